"""Ids typed on the command line or listed in files, as the model holds them: user and item
ids are whole numbers or text, and `42` on a command line is the number when the model's ids
are numbers. Allow and deny lists are files of one item id per line, UTF-8 (a byte-order mark
is accepted), read with bounds: at most `MAX_LIST_BYTES` in all and `MAX_LINE` characters a
line, so `/dev/zero` or a file without line breaks fails at once, naming the file and line."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bert4rec.data.users import more_note
from bert4rec.errors import DataError, UnknownIdError

_INTEGER = re.compile(r"-?[0-9]+")
MAX_LIST_BYTES = 256 << 20
"""The largest allow or deny list read: ten million long ids and more."""
MAX_LINE = 1000
"""The longest line of an allow or deny list, in bytes; ids are short."""
SHOWN = 40
"""How many characters of a bad line an error shows."""
BOM = b"\xef\xbb\xbf"


def typed(text: str, integer: bool) -> Any:
    """`text` as an id of a model whose ids are whole numbers (`integer`) or text: a whole
    number in ASCII digits (an optional `-`) is the number; anything else stays text, which
    such a model does not know: the caller says so."""
    text = text.strip()
    return int(text) if integer and _INTEGER.fullmatch(text) else text


def shown(text: str) -> str:
    """`text` as an error message quotes it: at most SHOWN characters."""
    return repr(text) if len(text) <= SHOWN else f"{text[:SHOWN]!r}... ({len(text):,} characters)"


@dataclass(frozen=True)
class IdList:
    """Item ids read from a file, each with the line it came from."""

    path: Path
    ids: list[Any]
    lines: list[int]

    def known(self, known: set[Any] | dict[Any, Any], skip_unknown: bool, n_known: int
              ) -> list[Any]:
        """The ids the model knows, in file order. An unknown id raises `UnknownIdError`
        naming the file and line, unless `skip_unknown`."""
        kept = [item for item in self.ids if item in known]
        if len(kept) < len(self.ids) and not skip_unknown:
            line, item = next((n, i) for n, i in zip(self.lines, self.ids, strict=True)
                              if i not in known)
            missing = [i for i in self.ids if i not in known]
            more = more_note(missing)
            raise UnknownIdError(
                f"{self.path}, line {line}: item {shown(str(item))} is not among the model's "
                f"{n_known:,} items{more}; --skip-unknown leaves unknown items out", missing)
        return kept


def read_id_list(path: str | Path, integer: bool) -> IdList:
    """A file of item ids, one per line (blank lines skipped), typed as the model's ids.
    Raises `DataError` for a file without ids, one too large, a line too long or text that is
    not UTF-8; `OSError` for one that cannot be read."""
    path = Path(path)
    ids, lines = [], []
    read = 0
    with open(path, "rb") as handle:
        for number in itertools.count(1):
            raw = handle.readline(MAX_LINE + 2)
            if not raw:
                break
            read += len(raw)
            if read > MAX_LIST_BYTES:
                raise DataError(f"{path}: larger than {MAX_LIST_BYTES >> 20} MiB; an allow or "
                                "deny list holds one item id per line")
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            line = raw.rstrip(b"\r\n")
            if len(line) > MAX_LINE:
                raise DataError(f"{path}, line {number}: longer than {MAX_LINE:,} bytes; "
                                "expected one item id per line")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {number}: not UTF-8 text ({err.reason} at byte "
                                f"{err.start}); expected one item id per line") from err
            if text.strip():
                ids.append(typed(text, integer))
                lines.append(number)
    if not ids:
        raise DataError(f"{path}: no item ids; expected one item id per line")
    return IdList(path, ids, lines)
