"""How recommendations are printed: an aligned table for people, JSON for programs (shared by
`recommend`, `similar` and `demo`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from bert4rec.cli.terminal import escaped_json, printable
from bert4rec.inference.recommender import Recommendations


def format_table(result: Recommendations, explain: bool = False) -> str:
    """Rank, title, genres and score as aligned text; explanations indented below each row.
    Titles and genres are `printable`: no escape sequence from the data reaches the terminal."""
    rows = [(str(r.rank), printable(r.title), printable("|".join(r.genres)), f"{r.score:.3f}")
            for r in result]
    header = ("rank", "title", "genres", "score")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    for rec, row in zip(result, rows, strict=True):
        cells = [row[0].rjust(widths[0]), *(c.ljust(w) for c, w in zip(row[1:3], widths[1:3],
                                                                        strict=True)), row[3]]
        lines.append("  ".join(cells))
        if explain:
            because = ", ".join(f"{printable(c.title)} (-{c.score_drop:.2f})"
                                for c in rec.because)
            lines.append(f"{'':{widths[0]}}  because: {because or 'no single history title'}")
    return "\n".join(lines)


def as_dict(result: Recommendations) -> dict[str, Any]:
    """The history as resolved and the ranked items, as JSON-ready values."""
    return {
        "history": [asdict(entry) for entry in result.history],
        "items": [asdict(rec) for rec in result],
    }


def as_json(result: Recommendations) -> str:
    """`as_dict(result)` as one JSON document."""
    return escaped_json(json.dumps(as_dict(result), ensure_ascii=False))
