"""Pure string functions for film titles: split off the year and alternative titles, undo
MovieLens' article inversion ("Matrix, The" -> "The Matrix"), and normalise for matching.

MovieLens titles look like `Main title (alternative) (a.k.a. another) (1999)`: the year is the
last parenthesised group, other trailing groups are alternative or original-language titles.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Articles MovieLens moves to the end of a title ("Cercle Rouge, Le", "Avventura, L'").
ARTICLES = frozenset(
    {
        "the",
        "a",
        "an",
        "le",
        "la",
        "les",
        "l'",
        "il",
        "el",
        "der",
        "die",
        "das",
        "los",
        "las",
        "lo",
        "un",
        "une",
        "det",
        "den",
        "ein",
        "eine",
        "gli",
    }
)

_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")
_TRAILING_GROUP = re.compile(r"\s*\(([^()]*)\)\s*$")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?)\s+", re.IGNORECASE)
_INVERTED = re.compile(r"(?P<body>.+),\s+(?P<article>[^\s,]+)")
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class ParsedTitle:
    """A title split into its names (main first, then alternatives, articles in front) and year."""

    names: tuple[str, ...]
    year: int | None


def parse_title(title: str) -> ParsedTitle:
    """Split `Matrix, The (a.k.a. X) (1999)` into names ("The Matrix", "X") and year 1999."""
    rest = title.strip()
    year = None
    match = _YEAR.search(rest)
    if match and match.start() > 0:
        year = int(match.group(1))
        rest = rest[: match.start()]
    alternatives: list[str] = []
    while (match := _TRAILING_GROUP.search(rest)) and match.start() > 0:
        alternatives.insert(0, _AKA.sub("", match.group(1)).strip())
        rest = rest[: match.start()]
    names = [uninvert(name) for name in [rest.strip(), *alternatives] if name]
    return ParsedTitle(names=tuple(names), year=year)


def uninvert(name: str) -> str:
    """Move a trailing article back to the front: "Matrix, The" -> "The Matrix"."""
    match = _INVERTED.fullmatch(name.strip())
    if not match or match["article"].lower() not in ARTICLES:
        return name.strip()
    article = match["article"]
    separator = "" if article.endswith("'") else " "
    return f"{article}{separator}{match['body']}"


def normalize(text: str) -> str:
    """Lower case, no accents, no apostrophes, other punctuation as single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    ascii_text = _APOSTROPHES.sub("", ascii_text.lower().replace("&", " and "))
    return _NON_WORD.sub(" ", ascii_text).strip()


def strip_article(key: str) -> str:
    """A normalised name without its leading article ("the matrix" -> "matrix")."""
    first, _, rest = key.partition(" ")
    return rest if rest and first in ARTICLES else key


def title_keys(title: str) -> tuple[set[str], set[str], int | None]:
    """The normalised names of a title, the same without leading articles, and its year."""
    parsed = parse_title(title)
    keys = {key for key in (normalize(name) for name in parsed.names) if key}
    return keys, {strip_article(key) for key in keys}, parsed.year
