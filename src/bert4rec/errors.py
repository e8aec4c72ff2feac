"""Project exceptions: states a caller may want to catch by name."""


class Bert4RecError(Exception):
    """Base class of the package's own errors; the CLI prints these without a traceback."""


class SettingsError(Bert4RecError, ValueError):
    """A training setting has the wrong type or an impossible value: the message names the
    setting (`section.field`), the value and what is allowed."""


class DataError(Bert4RecError, ValueError):
    """Input data is malformed: the message names the file, line or column and the fix."""


class ChecksumError(DataError):
    """A downloaded or cached file does not match its published checksum."""


class ModelDirError(Bert4RecError, ValueError):
    """A run directory is missing files or holds weights that do not match its config."""


class TitleError(Bert4RecError, LookupError):
    """A title or item reference could not be resolved to exactly one item.

    `candidates` holds the closest catalogue items as (item id, title) pairs, best first, so a
    caller (CLI, HTTP, web page) can offer them instead of guessing.
    """

    def __init__(self, message: str, query: str, candidates: list[tuple[int | str, str]]) -> None:
        super().__init__(message)
        self.query = query
        self.candidates = candidates


class TitleNotFoundError(TitleError):
    """No catalogue item matches the title (or item id) given."""


class AmbiguousTitleError(TitleError):
    """Several catalogue items match the title equally well; add the year or use the item id."""


class UnknownIdError(Bert4RecError, LookupError):
    """Users or items that a model was not trained with, under `on_unknown="raise"`; `ids`
    lists every one of them, the message names the first."""

    def __init__(self, message: str, ids: list) -> None:
        super().__init__(message)
        self.ids = ids


class NotFittedError(Bert4RecError, RuntimeError):
    """A `bert4rec.Model` was asked to recommend or save before `fit` or `Model.load`."""
