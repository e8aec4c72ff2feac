"""The plain install works without the optional extras (issue 16): no module of the package
imports an extra's package at import time, and every package it imports is a dependency."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "bert4rec"
# import name -> the dependency that installs it, where they differ (fastapi pins starlette)
DISTRIBUTION = {"pydantic_settings": "pydantic-settings", "starlette": "fastapi"}


def top_level_imports(path: Path) -> set[str]:
    """Packages a module imports when it is imported (not inside a function)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_module_imports_only_dependencies_at_import_time():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = requirement_names(project["dependencies"]) | {"bert4rec"}
    optional = set().union(*map(requirement_names, project["optional-dependencies"].values()))
    assert {"pyarrow", "onnx", "onnxruntime", "onnxscript", "matplotlib", "pandas"} <= optional
    assert "pyarrow" not in needed
    stray = {}
    for path in SOURCE.rglob("*.py"):
        third_party = {name for name in top_level_imports(path)
                       if name not in sys.stdlib_module_names and name != "__future__"}
        wrong = {n for n in third_party if DISTRIBUTION.get(n, n).replace("_", "-") not in needed}
        if wrong:
            stray[str(path.relative_to(ROOT))] = sorted(wrong)
    assert stray == {}
