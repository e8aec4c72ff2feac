"""Ids typed on the command line or listed in files, as the model holds them: user and item
ids are whole numbers or text, and `42` on a command line is the number when the model's ids
are numbers. Allow and deny lists are files of one item id per line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bert4rec.data.users import more_note
from bert4rec.errors import DataError, UnknownIdError

_INTEGER = re.compile(r"[+-]?\d+")


def typed(text: str, integer: bool) -> Any:
    """`text` as an id of a model whose ids are whole numbers (`integer`) or text. Text that is
    not a whole number stays text, which such a model does not know: the caller says so."""
    text = text.strip()
    return int(text) if integer and _INTEGER.fullmatch(text) else text


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
                f"{self.path}, line {line}: item {item!r} is not among the model's "
                f"{n_known:,} items{more}; --skip-unknown leaves unknown items out", missing)
        return kept


def read_id_list(path: str | Path, integer: bool) -> IdList:
    """A file of item ids, one per line (blank lines skipped), typed as the model's ids.
    Raises `DataError` for a file without ids, `OSError` for one that cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected "
                        "one item id per line") from err
    ids, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            ids.append(typed(line, integer))
            lines.append(number)
    if not ids:
        raise DataError(f"{path}: no item ids; expected one item id per line")
    return IdList(path, ids, lines)
