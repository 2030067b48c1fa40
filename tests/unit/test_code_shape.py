"""The code's shape, read from the source: no import cycle in the two packages, and functions in
the trainer's recipe and the services short enough to read in one screen."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("functions", "trainer_job")
SHORT_FUNCTIONS = ("trainer_job/ml", "trainer_job/tasks", "functions/services")
MAX_FUNCTION_LINES = 60
TEMPLATES = ROOT / "trainer_job" / "exports" / "templates"  # scripts shipped in export zips


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if TEMPLATES not in path.parents:
                found[module_name(path)] = path
    return found


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names a module's import statements (anywhere in it) name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: None if is_package else -1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}"  # a submodule, or a name in `base`


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the two packages it imports. Importing one's own parent
    package is left out: it is always initialised first, and is not a cycle."""
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text("utf-8"))
        targets = {owner(n) for n in imported(tree, module, path.name == "__init__.py")}
        graph[module] = {t for t in targets if t and t != module and not module.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_functions_or_trainer_job() -> None:
    graph = import_graph()
    assert "trainer_job.job" in graph and "functions.api.app" in graph  # the walk found them
    assert sum(len(targets) for targets in graph.values()) > 100  # and read their imports
    assert cycles(graph) == []


def long_functions() -> list[str]:
    found = []
    for folder in SHORT_FUNCTIONS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        where = path.relative_to(ROOT).as_posix()
                        found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_functions_of_the_recipe_and_the_services_are_short() -> None:
    assert long_functions() == []
