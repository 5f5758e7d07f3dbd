"""The layout keeps its paths: imports point one way (docs/architecture.md), no import circles, small folders and modules.

Imports are read with `ast`, those inside functions included, so a deferred import cannot hide a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Higher layers may import lower ones, never the reverse, and never a different layer of the same rank.
LAYERS: dict[str, float] = {
    "sealserve.__main__": 10,  # `python -m sealserve`: the command line
    "sealserve.cli": 9,
    "sealserve": 9,  # the package itself: the public API (pack, verify_bundle, Keyring, MLModel)
    "sealserve.serve": 8,  # the composition: app, launch, contract
    "sealserve.serve.web": 7,
    "sealserve.serve.auth": 6,
    "sealserve.serve.observability": 6,
    "sealserve.serve.rollout": 5.5,  # candidates: the data plane's router and hook, above it
    "sealserve.serve.request": 5,
    "sealserve.serve.lifecycle": 4,
    "serve's shared ground": 3.8,  # config (and model_options), settings, errors: importable from anywhere in serve/, importing none of it
    "sealserve.packing": 3.5,  # pack-time authoring: only the CLI and the public API import it
    "sealserve.runtime": 3,
    "sealserve.store": 3,
    "sealserve.trust": 2,
    "sealserve.bundle": 1,
    "sealserve.errors": 0,
    "sealserve.model": 0,
}
GROUND = ("sealserve.serve.config", "sealserve.serve.model_options", "sealserve.serve.settings", "sealserve.serve.errors")
PACKING_IMPORTERS = ("sealserve.cli", "sealserve")
MAX_MODULES_PER_FOLDER = 12
MAX_LINES = 400
DECLARATIVE = {"sealserve/serve/web/openapi_schemas.py"}  # the OpenAPI contract's table: data, not logic


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in GROUND:
        return "serve's shared ground"
    best = ""
    for layer in LAYERS:
        if (module == layer or module.startswith(layer + ".")) and len(layer) > len(best):
            best = layer
    assert best, f"{module} belongs to no layer: add it to LAYERS and to docs/architecture.md"
    return best


def imports_of(path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """Every sealserve module this file imports, at any depth in the file, with the line."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sealserve"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sealserve") and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield (candidate if candidate in modules else node.module), node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    files = {module_name(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        graph[module] = {target: line for target, line in imports_of(path, set(files)) if target != module}
    return graph


def test_the_graph_is_read() -> None:
    """A live control: the walk sees deferred imports and the data plane's imports."""
    graph = import_graph()
    assert "sealserve.serve.request.dataplane" in graph["sealserve.serve.request.protocols.native"]
    assert "sealserve.packing.build" in graph["sealserve"]  # imported inside __getattr__


def test_imports_point_one_way() -> None:
    wrong = []
    for module, targets in import_graph().items():
        source = layer_of(module)
        for target, line in targets.items():
            destination = layer_of(target)
            if destination == source:
                continue
            if destination == "sealserve.packing" and source not in PACKING_IMPORTERS:
                wrong.append(f"{module}:{line} imports {target} (pack-time code; the server never imports it)")
            elif LAYERS[destination] >= LAYERS[source]:
                wrong.append(f"{module}:{line} imports {target} ({source} may not import {destination})")
    assert wrong == []


def test_no_import_circles() -> None:
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_a_circle_would_be_found(tmp_path: Path) -> None:
    """Positive control for the circle check's reader: a deferred import inside a function is an edge."""
    path = tmp_path / "sample.py"
    path.write_text("def late():\n    from sealserve.serve.app import create_app\n")
    assert list(imports_of(path, {"sealserve.serve.app"})) == [("sealserve.serve.app", 2)]


@pytest.mark.parametrize("folder", sorted({path.parent for path in SRC.rglob("*.py")}), ids=lambda p: str(p.relative_to(SRC)))
def test_a_folder_holds_at_most_a_dozen_modules(folder: Path) -> None:
    modules = [path.name for path in folder.glob("*.py") if path.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_PER_FOLDER, sorted(modules)


def test_no_module_is_over_400_lines() -> None:
    long = {}
    for path in SRC.rglob("*.py"):
        relative = str(path.relative_to(SRC))
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and relative not in DECLARATIVE:
            long[relative] = lines
    assert long == {}
