"""What the command line prints to a terminal: text without control characters, on one line.

Titles and error messages can hold text from a data file or a user (an ANSI or OSC escape
sequence in a title could recolour, retitle or rewrite the terminal), so every string from
data passes through `printable` before it is printed.
"""

from __future__ import annotations

import re
import unicodedata

# Bidirectional embeddings, overrides and isolates: they reorder the text shown around them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def printable(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, bidirectional overrides) removed; tabs
    and line breaks become single spaces, so the text stays on its line."""
    text = _BREAKS.sub(" ", text)
    return "".join(c for c in text if c not in _BIDI and unicodedata.category(c) != "Cc")


def one_line(text: str) -> str:
    """`printable(text)` with every run of whitespace (line breaks included) as one space."""
    return _SPACES.sub(" ", printable(text)).strip()
