"""The library's errors name the Python API's arguments (`on_unknown='skip'`, `min_rating`);
the command line says its own flags instead, so each reader sees the words it can type."""

from __future__ import annotations

import re

FLAGS: tuple[tuple[str, str], ...] = (
    ("on_unknown='skip'", "--skip-unknown"),
    ("min_rating=None", "--all-ratings"),
    ("min_rating", "--min-rating"),
    ("min_user_interactions", "--min-user-interactions"),
    ("min_item_interactions", "--min-item-interactions"),
    ("device='cpu'", "--device cpu"),
    ("data_dir=", "--data-dir"),
    ("user=, item= and timestamp=", "--user-col, --item-col and --time-col"),
)
"""Each Python argument as an error writes it, and the flag that does the same; the first
that fits wins (`min_rating=None` before `min_rating`)."""
_PATTERN = re.compile("|".join(rf"(?<![\w-]){re.escape(python)}(?![\w])" if python[-1].isalnum()
                               else rf"(?<![\w-]){re.escape(python)}" for python, _ in FLAGS))
_FLAG = dict(FLAGS)


def in_flags(message: str) -> str:
    """`message` with the Python arguments it names written as the CLI's flags."""
    return _PATTERN.sub(lambda match: _FLAG[match.group(0)], message)
