"""The package's layers point one way: a module imports only its own layer and the layers below it.

The layers (bottom first) are :data:`LAYERS`; docs/architecture.md draws them. Every ``import`` statement
of ``robustdepth/`` — module-level and function-local alike, since a function-local import still runs —
is checked; imports under ``if TYPE_CHECKING:`` never run and are exempt. No import runs up a layer, and no
two modules import each other, directly or through others, at module level (an import circle). Run it on its
own with ``pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robustdepth"

#: Bottom first. A node is a module or package; a module belongs to the longest node that prefixes it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("robustdepth._version", "robustdepth.geometry", "robustdepth.config", "robustdepth.devices",
     "robustdepth.component"),
    ("robustdepth.networks", "robustdepth.checkpoint", "robustdepth.visualize", "robustdepth.similarity"),
    ("robustdepth.data",),
    ("robustdepth.degrade", "robustdepth.world"),
    ("robustdepth.evaluation",),
    ("robustdepth.training.context", "robustdepth.training.distributed"),  # the step contract
    ("robustdepth.providers",),
    ("robustdepth.losses",),
    ("robustdepth.configure",),  # the full config: fixed sections + every registered component's section
    ("robustdepth.training",),
    ("robustdepth.inference", "robustdepth.export", "robustdepth.outputs", "robustdepth.weights"),
    ("robustdepth.quantize", "robustdepth.hub"),
    ("robustdepth.bench", "robustdepth.demo", "robustdepth.app", "robustdepth.cli", "robustdepth.cli_lazy",
     "robustdepth.pipeline_cli", "robustdepth.export_cli", "robustdepth",
     # command modules that live beside their feature but build full configs, as every command does
     "robustdepth.degrade.cli", "robustdepth.providers.masks_cli", "robustdepth.providers.histogram_cli",
     "robustdepth.evaluation.pose_cli"),
)

def _level() -> dict[str, int]:
    return {node: i for i, layer in enumerate(LAYERS) for node in layer}


def _node(module: str, level: dict[str, int]) -> str | None:
    best = None
    for node in level:
        if (module == node or module.startswith(node + ".")) and (best is None or len(node) > len(best)):
            best = node
    return best


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import statements under ``if TYPE_CHECKING:`` (they never run)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return guarded


def _imported(module: str, path: Path, stmt: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    if isinstance(stmt, ast.Import):
        names = [alias.name for alias in stmt.names]
    else:
        if stmt.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - stmt.level + 1]
            target = ".".join(base + ([stmt.module] if stmt.module else []))
        else:
            target = stmt.module or ""
        names = [target] + [f"{target}.{a.name}" for a in stmt.names if f"{target}.{a.name}" in modules]
    out = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("robustdepth"):
            out.append(name)
    return out


def upward_imports() -> Iterator[tuple[str, str, str]]:
    """(importing node, imported node, importing module) for every import that runs up the layers."""
    level, modules = _level(), _modules()
    for module, path in sorted(modules.items()):
        tree = ast.parse(path.read_text())
        guarded = _type_checking_nodes(tree)
        for stmt in ast.walk(tree):
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)) or id(stmt) in guarded:
                continue
            for target in _imported(module, path, stmt, modules):
                a, b = _node(module, level), _node(target, level)
                assert a is not None and b is not None, f"{module} or {target} is in no layer: add it to LAYERS"
                if level[b] > level[a]:
                    yield a, b, module


def test_every_module_is_in_a_layer() -> None:
    level = _level()
    assert [m for m in _modules() if _node(m, level) is None] == []


def test_no_import_runs_up_the_layers() -> None:
    found: dict[tuple[str, str], set[str]] = {}
    for a, b, module in upward_imports():
        found.setdefault((a, b), set()).add(module)
    assert not found, ("imports that run up the layers (move the code down, or build it one layer up): "
                       f"{ {pair: sorted(mods) for pair, mods in found.items()} }")


def test_no_module_level_import_circle() -> None:
    """The module-level import graph of the package is acyclic (graphlib names a circle when there is one)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        guarded = _type_checking_nodes(tree)
        graph[module] = {target for stmt in tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))
                         and id(stmt) not in guarded for target in _imported(module, path, stmt, modules)
                         if target != module}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"module-level import circle: {' -> '.join(err.args[1])}")
