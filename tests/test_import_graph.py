"""No import cycles among the project's modules, counting every import wherever it is written.

An import inside a function (or under ``if TYPE_CHECKING``) still makes the two modules depend on
each other; it only hides the cycle from the interpreter. So this reads every ``import`` statement
of every module with ``ast`` (nothing is imported or executed) and fails on any strongly connected
group of modules, naming it. Migrations are left out: they import nothing of the apps' code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hydra_site", "videos", "moderation", "inference")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (``__init__`` named after its package)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.relative_to(root).parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name an import statement of the module asks for (``from a import b`` gives ``a.b`` and ``a``)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name resolves to the longest module it starts with)."""
    modules = module_files(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for wanted in imported_names(name, path):
            parts = wanted.split(".")
            target = next(
                (".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None
            )
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a circle (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_project_has_no_import_cycles():
    graph = import_graph(ROOT, PACKAGES)
    assert "inference.services.settlement" in graph and graph["inference.tasks"]  # the graph was really read
    assert cycles(graph) == []


def test_the_inference_services_do_not_import_moderation():
    graph = import_graph(ROOT, PACKAGES)
    reaching = {
        module: sorted(t for t in targets if t.startswith("moderation"))
        for module, targets in graph.items()
        if module.startswith(("inference.services", "inference.trust", "inference.selectors"))
    }
    assert {module: targets for module, targets in reaching.items() if targets} == {}


@pytest.mark.parametrize(
    "source",
    [
        "def later():\n    from pkg import b\n",  # a lazy import is still an edge
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import thing\n",
        "from . import b\n",
    ],
    ids=["lazy", "type-checking", "relative"],
)
def test_a_cycle_is_found_however_the_import_is_written(tmp_path, source):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(source)
    (package / "b.py").write_text("import pkg.a\n")
    (package / "c.py").write_text("from pkg import a\n")  # depends on the cycle without being in it
    assert cycles(import_graph(tmp_path, ("pkg",))) == [["pkg.a", "pkg.b"]]
