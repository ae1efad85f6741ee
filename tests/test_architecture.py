"""The shape of `src/computer_use`: no import cycle, `desktops/` standing on its own, small modules.

The import graph is read from the source (ast), so it sees every import: module-level,
inside functions and under `TYPE_CHECKING` alike. A cycle hidden in a function or a type hint
still ties two modules together for whoever changes one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "computer_use"
MAX_LINES = 400

# desktops/ is process control only: it may not reach the transports or the other domains.
DESKTOPS_MAY_NOT_IMPORT = ("agent", "sessions", "mcp_server", "streaming", "vnc", "web")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (a `from package import submodule` counts as the
    submodule; `from module import thing` as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    found.add(target)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                child = todo.pop()
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_sees_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    # desktops.warm_pool imports the Desktop class for its type hints only
    assert "computer_use.desktops.desktop" in GRAPH["computer_use.desktops.warm_pool"]
    # the CLI builds the app lazily, inside the serve command
    assert "computer_use.main" in GRAPH["computer_use.cli"]


def test_src_has_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_desktops_import_nothing_from_the_other_domains_or_transports() -> None:
    forbidden = tuple(f"{PACKAGE}.{name}" for name in DESKTOPS_MAY_NOT_IMPORT)
    reaching = {
        module: sorted(i for i in imports if i.startswith(forbidden))
        for module, imports in GRAPH.items()
        if module.startswith(f"{PACKAGE}.desktops")
    }
    assert {module: found for module, found in reaching.items() if found} == {}


@pytest.mark.parametrize("module", sorted(MODULES), ids=lambda m: m.removeprefix(f"{PACKAGE}."))
def test_no_module_is_over_400_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by job"
