"""The layering, read from the source: only functions/storage talks to the storage SDKs.

Every Python file of the repository is parsed except the tests (which reach under the seams on
purpose: fault injection, checks of the raw rows). Imports inside functions count as well.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORAGE = "functions/storage/"
SKIPPED_DIRS = {"tests", "node_modules", "__pycache__"}

# Which files may import each azure package (a path ending in "/" allows everything under it).
AZURE_ALLOWED = {
    "azure.core": (STORAGE,),
    "azure.data": (STORAGE,),
    "azure.storage": (STORAGE,),
    "azure.identity": (STORAGE + "clients.py",),  # where the credential is built
    "azure.functions": ("function_app.py",),  # the Functions host's wiring
    # Custom Vision's own client, as users run it, and the migration that talks to Custom Vision
    "azure.cognitiveservices": ("examples/", "tools/migrate/"),
}
SDK_CLIENT_CALLS = {
    "get_blob_client",
    "get_container_client",
    "get_queue_client",
    "get_table_client",
}


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(
            d for d in subfolders if not d.startswith(".") and d not in SKIPPED_DIRS
        )
        for file in sorted(f for f in files if f.endswith(".py")):
            path = Path(folder, file)
            relative = path.relative_to(ROOT).as_posix()
            yield relative, ast.parse(path.read_text(encoding="utf-8"), relative)


def _imports(tree: ast.Module) -> Iterator[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import statement of the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node.module, alias.name, node.lineno


def _allowed(path: str, places: tuple[str, ...]) -> bool:
    return any(path.startswith(p) if p.endswith("/") else path == p for p in places)


def _azure_package(module: str, name: str | None) -> str | None:
    """`azure.x` for an import of azure.x or of anything in it; None when not azure."""
    parts = module.split(".")
    if parts[0] != "azure":
        return None
    if len(parts) == 1:  # `import azure` or `from azure import x`
        return f"azure.{name}" if name else "azure"
    return ".".join(parts[:2])


def test_the_sources_are_found() -> None:
    paths = {path for path, _ in _sources()}
    assert {"function_app.py", "functions/storage/clients.py", "trainer_job/__main__.py"} <= paths
    assert not any(p.startswith("tests/") for p in paths)


def test_only_storage_imports_the_storage_sdks() -> None:
    misplaced = []
    for path, tree in _sources():
        for module, name, line in _imports(tree):
            package = _azure_package(module, name)
            if package is not None and not _allowed(path, AZURE_ALLOWED.get(package, ())):
                misplaced.append(f"{path}:{line} imports {module}")
    assert misplaced == []


def test_outside_storage_only_its_classes_are_imported() -> None:
    """Repositories, stores and their value types; not helpers such as row-key prefixes."""
    misplaced = []
    for path, tree in _sources():
        if path.startswith(STORAGE):
            continue
        for module, name, line in _imports(tree):
            if module != "functions.storage" and not module.startswith("functions.storage."):
                continue
            if name is None or not name[0].isupper() or name.isupper():
                misplaced.append(f"{path}:{line} imports {name or module} from {module}")
    assert misplaced == []


def test_outside_storage_no_sdk_clients_are_taken() -> None:
    misplaced = []
    for path, tree in _sources():
        if path.startswith(STORAGE):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in SDK_CLIENT_CALLS:
                misplaced.append(f"{path}:{node.lineno} calls {node.attr}")
    assert misplaced == []
