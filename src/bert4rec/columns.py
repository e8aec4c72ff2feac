"""The column names every table in the package uses, defined once."""

USER = "user"
ITEM = "item"
TIMESTAMP = "timestamp"
RATING = "rating"
TITLE = "title"
GENRES = "genres"
INDEX = "index"
RANK = "rank"
SCORE = "score"

