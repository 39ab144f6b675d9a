"""docs/architecture.md's worked examples run as written, and what they add works in a real training step.

Each example is the ``python`` blocks that follow a ``<!-- example: NAME -->`` marker, executed in order in
one namespace. Registries are global, so every test removes what its example registered.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from robustdepth.configure import load_config
from robustdepth.data import DATASETS, build_dataset
from robustdepth.evaluation.protocols import PROTOCOLS
from robustdepth.losses.base import LOSSES
from robustdepth.providers.base import PROVIDERS
from robustdepth.training.trainer import Trainer
from tests.conftest import corridor_overrides

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCK = re.compile(r"<!-- example: (\w+) -->\s*```python\n(.*?)```", re.S)


def examples() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, code in BLOCK.findall(DOC.read_text()):
        out.setdefault(name, []).append(code)
    return out


def run_example(name: str) -> dict[str, Any]:
    """Execute the example as a module (dataclasses look their module up in sys.modules)."""
    module = types.ModuleType(f"architecture_example_{name}")
    sys.modules[module.__name__] = module
    try:
        for code in examples()[name]:
            exec(compile(code, f"{DOC}:{name}", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


@pytest.fixture
def clean_registries() -> Iterator[None]:
    before = {id(r): set(r) for r in (LOSSES, PROVIDERS, DATASETS, PROTOCOLS)}
    yield
    for registry in (LOSSES, PROVIDERS, DATASETS, PROTOCOLS):
        for key in set(registry) - before[id(registry)]:
            del registry[key]


def test_the_document_has_every_example() -> None:
    assert set(examples()) == {"loss", "provider", "dataset", "protocol"}


def test_loss_example_trains_and_pulls_the_mean_disparity_to_its_target(
        corridor: Path, tmp_path: Path, clean_registries: None) -> None:
    run_example("loss")
    assert "example_mean_disparity" in LOSSES
    cfg = load_config("monodepth2", corridor_overrides(corridor, **{
        "optim.max_steps": 1, "losses.example_mean_disparity.weight": 1.0, "losses.photometric.weight": 0.0,
        "losses.smoothness.weight": 0.0, "losses.example_mean_disparity.target": 0.9, "optim.lr": 1e-3}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    batch = next(iter(trainer._batches()))
    logs = trainer.train_step(batch)
    before = float(logs["loss/example_mean_disparity"])
    after = float(trainer.train_step(batch)["loss/example_mean_disparity"])
    assert 0.0 < after < before  # the only term: a step towards the target lowers it


def test_provider_example_is_required_and_read(corridor: Path, tmp_path: Path, clean_registries: None) -> None:
    run_example("provider")
    cfg = load_config("monodepth2", corridor_overrides(corridor, **{
        "optim.max_steps": 1, "losses.example_dark_disparity.weight": 0.01,
        "providers.example_brightness.enabled": True}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    logs = trainer.train_step(next(iter(trainer._batches())))
    assert torch.isfinite(torch.tensor(logs["loss/example_dark_disparity"]))
    brightness = trainer.last_ctx.provide("example_brightness")
    assert brightness.shape == (cfg.optim.batch_size,) and torch.allclose(
        brightness, trainer.last_ctx.image("clean").mean(dim=(1, 2, 3)))


def test_dataset_example_keeps_the_first_frames(corridor: Path, clean_registries: None) -> None:
    run_example("dataset")
    cfg = load_config("monodepth2", corridor_overrides(corridor, **{
        "data.dataset": "example_first_frames", "data.options": {"frames": 5}}))
    assert len(build_dataset(cfg, "train", train=True)) == 5


def test_protocol_example_registers_a_protocol(clean_registries: None) -> None:
    run_example("protocol")
    assert PROTOCOLS["example_world_50m"].max_depth == 50.0
