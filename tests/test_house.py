"""The package's shape, read from its source with `ast`: no function takes more than six
positional parameters, the package top holds at most eight modules, and no module imports
itself through others when it loads (an import cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bert4rec"
MOST_POSITIONAL = 6
MOST_AT_THE_TOP = 8


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name (a package by its own name), parsed."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


def positional(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The parameters a caller may pass by position (a method's `self` or `cls` is bound)."""
    names = [a.arg for a in function.args.posonlyargs + function.args.args]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def test_no_function_takes_more_than_six_positional_parameters():
    crowded = [
        f"{name}:{node.lineno} {node.name}({', '.join(positional(node))})"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and len(positional(node)) > MOST_POSITIONAL
    ]
    assert crowded == []


def test_the_package_top_holds_at_most_eight_modules():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MOST_AT_THE_TOP, top


def loading_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules that `name` imports while it loads: its module-level imports,
    those under `if`/`try` at module level too, but not those under `if TYPE_CHECKING:` or
    inside functions (they run later, when the module is whole), nor the packages that hold
    `name` (Python loads them before it)."""
    package = name if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists() \
        else name.rpartition(".")[0]
    imported: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package (or its parents)
                    parent = package.rsplit(".", node.level - 1)[0]
                    base = f"{parent}.{base}" if base else parent
                if not name.startswith(f"{base}."):  # its own packages are loaded first
                    imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return (imported & known) - {name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles():
    parsed = modules()
    graph = {name: loading_imports(name, tree, set(parsed)) for name, tree in parsed.items()}
    assert sum(len(edges) for edges in graph.values()) > 100  # the walk sees the imports
    assert graph["bert4rec.training.loop"] >= {"bert4rec.evaluation.validation",
                                               "bert4rec.model", "bert4rec.rundir"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
