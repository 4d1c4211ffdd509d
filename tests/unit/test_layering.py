"""The import graph of ``dav2_core`` (read with ``ast``, nothing imported): no circle, and no import that runs
back up a floor.

Floors, top down: ``cli`` (argument parsing and printing) > ``batch`` (Ray Data) > ``jobs`` (a run over many
inputs) > ``video`` (the streaming core) > ``pipeline`` (EstimateOptions -> depth) > everything else (engines,
inference, model, effects, tiling, io, ...). A module may import its own floor or any floor below it.
Every import counts, module-level and inside functions alike; an import of a sub-package counts as one of its
``__init__`` (which imports the package's modules). The root ``dav2_core/__init__.py`` (which re-exports
for users from every floor) is left out of both rules. ``dav2_core`` never imports ComfyUI or the node adapters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dav2_core"
#: Floor of each top-level name in dav2_core (higher = further up); anything else is floor 0.
FLOORS = {"cli": 5, "__main__": 5, "batch": 4, "jobs": 3, "video": 2, "pipeline": 1}
FORBIDDEN = ("comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "nodes", "execution")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import sub`` -> ``pkg.sub`` when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
            found.update(subs or [target])
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.get(parts[1], 0) if len(parts) > 1 else 0


def test_the_graph_is_read():
    graph = _graph()
    assert "dav2_core.inference" in graph and "dav2_core.chunks" in graph["dav2_core.inference"]
    assert "dav2_core.jobs" in graph["dav2_core.batch.worker"]


def test_dav2_core_imports_no_comfyui_and_no_node_adapters():
    bad = {
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if target.split(".")[0] in FORBIDDEN
    }
    assert not bad, f"dav2_core must not import ComfyUI or nodes/: {sorted(bad)}"


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (module, target)
        for module, targets in graph.items()
        if module != "dav2_core"  # the package's own __init__ re-exports from every floor
        for target in targets
        if target in graph and _floor(target) > _floor(module)
    )


def test_no_import_runs_back_up_a_floor():
    upward = _upward(_graph())
    assert not upward, f"imports from a higher floor: {upward}"


def test_batch_does_not_use_the_cli_as_a_library():
    graph = _graph()
    bad = sorted(
        (m, t)
        for m, ts in graph.items()
        if m.startswith("dav2_core.batch")
        for t in ts
        if t.startswith("dav2_core.cli")
    )
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = {m: ts - {"dav2_core"} for m, ts in _graph().items() if m != "dav2_core"}
    assert _cycles(graph) == []


@pytest.mark.parametrize("graph", [{"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}])
def test_the_cycle_check_can_fail(graph):
    assert _cycles(graph) == [["a", "b", "c"]]
