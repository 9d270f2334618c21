"""No import cycle among the modules of the three packages.

A cycle closed by an import under ``TYPE_CHECKING`` counts too: it hides a dependency that goes
both ways (the ssh and vast handles once imported their backends for a type). Only module-level
imports are read; an import inside a function is a deliberate delay, not a dependency of the
module. ``from voltx import __version__`` and the like name the package itself, which every module
of it may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

from _support import REPO

PACKAGES = {
    "voltx": REPO / "packages/voltx-core/src",
    "voltx_backends": REPO / "packages/voltx-backends/src",
    "voltx_phases": REPO / "packages/voltx-phases/src",
}


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, src in PACKAGES.items():
        for path in (src / package).rglob("*.py"):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every module-level import, those under ``if TYPE_CHECKING`` too."""
    found: list[tuple[str, list[str]]] = []
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.If | ast.Try):
            nodes += [*node.body, *node.orelse]
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for imported, names in _imports(ast.parse(path.read_text())):
            candidates = [f"{imported}.{name}" for name in names] or [imported]
            for candidate in candidates:
                target = candidate if candidate in modules else owner(imported)
                if target is not None:
                    targets.add(target)
        graph[module] = targets - {module, *PACKAGES}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_type_checking_cycle() -> None:
    graph = {"a.backend": {"a.handle"}, "a.handle": {"a.backend"}, "a.other": set()}
    assert _cycles(graph) == [["a.backend", "a.handle"]]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import b\n")
    assert ("a", ["b"]) in _imports(tree)
