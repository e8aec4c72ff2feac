"""Project exceptions: states a caller may want to catch by name."""


class Bert4RecError(Exception):
    """Base class of the package's own errors; the CLI prints these without a traceback."""


class DataError(Bert4RecError, ValueError):
    """Input data is malformed: the message names the file, line or column and the fix."""


class ChecksumError(DataError):
    """A downloaded or cached file does not match its published checksum."""


class ModelDirError(Bert4RecError, ValueError):
    """A run directory is missing files or holds weights that do not match its config."""
