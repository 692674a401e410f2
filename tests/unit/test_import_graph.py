"""The import graph of shipcaptain: no cycles, and the floors of the house.

- No import cycle between shipcaptain's modules at module level (imports under
  ``if TYPE_CHECKING:`` are for the type checker only and do not count).
- The web package has no cycle even through the imports inside functions.
- The runbook model is the bottom floor: it imports nothing from the actions, the Markdown
  importer, the engine, the store, the CLI or the web layer (at any level).
- The CLI and the web layer reach the store and the engine only through the client.

Where the code does not keep a floor yet, the exact imports are listed below with the
reason; a listed import that is gone fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "shipcaptain"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imports_in(body: list[ast.stmt], *, functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a block (not those under ``if TYPE_CHECKING``); with
    ``functions``, those inside function bodies too."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _imports_in(node.body, functions=functions)
            yield from _imports_in(node.orelse, functions=functions)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if functions:
                yield from _imports_in(node.body, functions=functions)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    blocks = [h.body for h in inner] if field == "handlers" else [inner]
                    for block in blocks:
                        yield from _imports_in(block, functions=functions)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """The shipcaptain modules an import statement loads (a name imported from a package
    counts as the package unless it is a submodule)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES}


@cache
def import_graph(*, functions: bool) -> dict[str, set[str]]:
    """Each shipcaptain module -> the shipcaptain modules it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports_in(tree.body, functions=functions):
            targets |= _targets(node, module, is_package)
        graph[module] = targets - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def crossings(
    graph: dict[str, set[str]], floor: str, forbidden: tuple[str, ...]
) -> set[tuple[str, str]]:
    """(module of ``floor``, module of a ``forbidden`` package it imports) pairs."""
    return {
        (module, target)
        for module, targets in graph.items()
        if _within(module, floor)
        for target in targets
        if any(_within(target, f) for f in forbidden)
    }


#: Cycles through imports inside functions (deferred imports) outside the web package,
#: known today: each pair calls the other at run time. Not module-level cycles.
DEFERRED_CYCLES: list[list[str]] = [
    # k8s_rollback sets back the images with k8s_set_image's helpers; k8s_set_image reports
    # its watch with k8s_rollout's outcome
    ["shipcaptain.actions.k8s_rollout", "shipcaptain.actions.k8s_set_image"],
    # the anchorer verifies the log before it signs (anchors -> verify); verifying reads
    # anchors and a bundle's sections (verify -> anchors, evidence); the bundle is anchored
    # and verified as it is made (evidence -> anchors, verify)
    ["shipcaptain.audit.anchors", "shipcaptain.audit.verify", "shipcaptain.evidence"],
    # notify starts an incident's clock workflow; the clock sends its reminders by notify
    ["shipcaptain.engine.incident_clock", "shipcaptain.engine.notify"],
    # the release workflow runs a rollback; the rollback runs its steps as step workflows
    ["shipcaptain.engine.rollback", "shipcaptain.engine.workflows"],
    # check_runbook runs the announcement checks, which reuse its step-order helpers
    ["shipcaptain.runbook.checks", "shipcaptain.runbook.comms_checks"],
    # the Kubernetes double's cluster starts its controller, which reads the cluster
    [
        "shipcaptain.sandbox.doubles.kubernetes",
        "shipcaptain.sandbox.doubles.kubernetes_controller",
    ],
]


#: The floors and where the code does not keep them yet: (importer, imported) -> why.
FLOORS: dict[str, tuple[tuple[str, ...], dict[tuple[str, str], str]]] = {
    "shipcaptain.runbook": (
        (
            "shipcaptain.actions",
            "shipcaptain.markdown",
            "shipcaptain.engine",
            "shipcaptain.store",
            "shipcaptain.cli",
            "shipcaptain.web",
        ),
        {},
    ),
    "shipcaptain.cli": (
        ("shipcaptain.store", "shipcaptain.engine"),
        {},
    ),
    "shipcaptain.web": (
        ("shipcaptain.store", "shipcaptain.engine"),
        {},
    ),
}


def test_the_graph_sees_the_package() -> None:
    graph = import_graph(functions=False)
    assert "shipcaptain.runbook.model" in graph
    assert "shipcaptain.store.base" in graph["shipcaptain.store"]
    assert "shipcaptain.errors" in graph["shipcaptain.client"]


def test_no_import_cycle_at_module_level() -> None:
    assert cycles(import_graph(functions=False)) == []


def test_no_import_cycle_in_the_web_package_even_inside_functions() -> None:
    graph = import_graph(functions=True)
    web = {m: {t for t in ts if _within(t, "shipcaptain.web")} for m, ts in graph.items()}
    assert [c for c in cycles(web) if _within(c[0], "shipcaptain.web")] == []


def test_deferred_cycles_only_shrink() -> None:
    assert cycles(import_graph(functions=True)) == sorted(DEFERRED_CYCLES)


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_floor(floor: str) -> None:
    forbidden, allowed = FLOORS[floor]
    found = crossings(import_graph(functions=True), floor, forbidden)
    assert sorted(found - set(allowed)) == [], f"{floor} imports past its floor"
    assert sorted(set(allowed) - found) == [], "fixed: remove these from the exceptions"


def test_the_checks_find_a_cycle_and_a_crossing() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert crossings({"x.runbook.m": {"x.store.s"}}, "x.runbook", ("x.store",)) == {
        ("x.runbook.m", "x.store.s")
    }
