"""`--set SECTION.FIELD=VALUE` assignments for the benchmark scripts, typed by their field.

    from overrides import parse_overrides   # benchmarks/ is the script's folder
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bert4rec.config import FIELD_TYPES, SECTIONS
from bert4rec.errors import SettingsError


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["model.hidden=128", "optim.lr=3e-3"]` -> `{"model.hidden": 128, "optim.lr": 0.003}`,
    each value converted to its field's type (`Settings.override` takes the result)."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        section, _, name = key.partition(".")
        known = {f.name: f for f in fields(SECTIONS[section])} if section in SECTIONS else {}
        if not sep or name not in known:
            raise SettingsError(f"expected SECTION.FIELD=VALUE with a known field, got {pair!r}")
        try:
            changes[key] = FIELD_TYPES[known[name].type](text)
        except ValueError:
            raise SettingsError(f"{key}: expected {known[name].type}, got {text!r}") from None
    return changes
