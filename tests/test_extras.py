"""The plain install works without the optional extras (issue 16): no module of the package
imports an extra's package at import time, and every package it imports is a dependency."""

from __future__ import annotations

import ast
import os
import re
import subprocess
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


WITHOUT_PYARROW = """
import sys
class NoArrow:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pyarrow":
            raise ModuleNotFoundError("No module named 'pyarrow'", name=name)
sys.meta_path.insert(0, NoArrow())
import pandas as pd
from bert4rec.data.frames import to_polars
print(to_polars(pd.DataFrame({"u": [1, 2], "t": [0.5, 1.5]}), "events").shape)
to_polars(pd.DataFrame({"u": ["a", "b"]}), "events")
"""


def test_pandas_frames_without_pyarrow_name_the_extra():
    """Without pyarrow (not a dependency), numeric pandas columns still convert and a text
    column fails with the extra to install, not with an ImportError from polars."""
    pytest.importorskip("pandas", reason="the pandas extra is not installed")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PYARROW], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.stdout.strip() == "(2, 2)"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bert4rec.errors.DataError: events: converting a pandas DataFrame")
    assert "pip install 'bert4rec[pandas]'" in last
