"""What the command line prints to a terminal: text without control characters, on one line.

Titles and error messages can hold text from a data file or a user (an ANSI or OSC escape
sequence in a title could recolour, retitle or rewrite the terminal; a bidirectional control
could reorder what is shown), so every string from data passes through `printable` before it
is printed, and JSON through `escaped_json`, which writes those characters as `\\uXXXX`
escapes: the same JSON value, nothing a terminal acts on.
"""

from __future__ import annotations

import re
import unicodedata

# Bidirectional marks, embeddings, overrides and isolates: they reorder the text around them.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f" + "".join(sorted(_BIDI)) + "]")
"""What `json.dumps(..., ensure_ascii=False)` leaves raw and a terminal may act on: DEL, the
C1 controls (U+009B is a CSI) and the bidirectional controls (C0 controls it escapes)."""
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


def escaped_json(text: str) -> str:
    """JSON text (from `json.dumps`) with DEL, C1 and bidirectional controls written as
    `\\uXXXX` escapes; they occur only inside strings there, so the JSON value is the same."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
