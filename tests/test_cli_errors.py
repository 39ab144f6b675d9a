"""Every expected failure of the command line, one row each: exit status 2, exactly one line on stderr
starting with ``error:`` that names the culprit (file, key or value), and nothing changed on disk.

The rows are the cases of a hostile/unlucky-user sweep (bad cameras, bad overrides, foreign checkpoints,
occupied run directories, broken worlds, …). Each builds on small fixtures (3-frame corridor folders, an
untrained checkpoint), so most rows fail within a second — before any network is built.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.checkpoint import save_checkpoint
from robustdepth.cli import main
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.networks import DepthNet
from robustdepth.training.rundir import RunLock
from tests.conftest import corridor_overrides, write_corridor_sequence


def _folder(root: Path, name: str, intrinsics: str | None = None) -> Path:
    seq = write_corridor_sequence(root / name, frames=4)
    if intrinsics is not None:
        (seq / "intrinsics.txt").write_text(intrinsics + "\n")
    return seq


def _checkpoint(path: Path, cfg: Any, state: dict[str, torch.Tensor], **drop: bool) -> Path:
    payload: dict[str, Any] = {"config": to_dict(cfg), "step": 0, "models": {"depth": state}}
    for key in drop:
        payload.pop(key)
    return save_checkpoint(path, payload)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files every row reads: small folders (good and broken), checkpoints (good and broken), worlds."""
    root = tmp_path_factory.mktemp("cli_errors")
    e: dict[str, Path] = {"root": root}
    e["good"] = _folder(root, "good")
    e["nan_K"] = _folder(root, "nan_K", "nan nan 96 32")
    e["pp_far"] = _folder(root, "pp_far", "111 123 1e9 32")
    e["pp_out"] = _folder(root, "pp_out", "111 123 5000 32")
    e["zero_f"] = _folder(root, "zero_f", "0 123 96 32")
    e["nan_gt"] = _folder(root, "nan_gt")
    for f in (e["nan_gt"] / "depth").glob("*.npy"):
        np.save(f, np.full((64, 192), np.nan, dtype=np.float32))

    cfg = load_config("monodepth2", corridor_overrides(e["good"]))
    torch.manual_seed(0)
    state = DepthNet(18, scales=list(cfg.model.scales)).state_dict()
    ckpts = root / "ckpts"
    e["ckpt"] = _checkpoint(ckpts / "good.pt", cfg, state)
    cfg50 = load_config("monodepth2", [*corridor_overrides(e["good"]), "model.num_layers=50"])
    e["ckpt_arch"] = _checkpoint(ckpts / "arch.pt", cfg50, state)
    e["ckpt_keys"] = _checkpoint(ckpts / "keys.pt", cfg, {f"net.{k}": v for k, v in state.items()})
    e["ckpt_noconfig"] = _checkpoint(ckpts / "noconfig.pt", cfg, state, config=True)
    nan_state = {k: v.clone() for k, v in state.items()}
    next(v for v in nan_state.values() if v.is_floating_point()).fill_(float("nan"))
    e["ckpt_nan"] = _checkpoint(ckpts / "nan.pt", cfg, nan_state)
    e["ckpt_png"] = ckpts / "frame.pt"
    shutil.copy(e["good"] / "000000.png", e["ckpt_png"])

    e["run_existing"] = root / "run_existing"
    (e["run_existing"] / "checkpoints").mkdir(parents=True)
    shutil.copy(e["ckpt"], e["run_existing"] / "checkpoints" / "last.pt")
    e["run_locked"] = root / "run_locked"
    e["out_file"] = root / "preds.txt"
    e["out_file"].write_text("not a folder\n")
    e["image"] = e["good"] / "000001.png"

    e["world_incomplete"] = root / "world_incomplete"
    e["world_incomplete"].mkdir()
    (e["world_incomplete"] / "world.json").write_text(json.dumps({"preset": "tiny", "seed": 3, "complete": False}))
    e["world"] = root / "world"
    (e["world"] / "test" / "s0").mkdir(parents=True)
    (e["world"] / "world.json").write_text(json.dumps({"preset": "tiny", "seed": 0, "complete": True}))
    (e["world"] / "test" / "s0" / "meta.json").write_text(
        json.dumps({"num_frames": 3, "conditions": ["clear"], "severity": {}}))
    e["tiny"] = write_corridor_sequence(root / "tiny", frames=3)  # one sample: cannot fill a batch of 2
    return e


@dataclass(frozen=True)
class Case:
    """argv (from the fixture paths) → exit 2 with one ``error:`` line containing every ``culprit`` string."""

    argv: Callable[[dict[str, Path]], list[str]]
    culprit: Callable[[dict[str, Path]], list[str]]
    patch: dict[str, Any] = field(default_factory=dict)  # module attribute → value, for the row only
    hold_lock: bool = False


def _train(data: str, **extra: object) -> Callable[[dict[str, Path]], list[str]]:
    return lambda e: ["train", "monodepth2", *corridor_overrides(e[data], **extra),
                      "--run-dir", str(e["root"] / "new_run")]


def _lit(*parts: str) -> Callable[[dict[str, Path]], list[str]]:
    return lambda e: list(parts)


CASES: dict[str, Case] = {
    # data loss
    "train into an existing run": Case(
        lambda e: ["train", "monodepth2", *corridor_overrides(e["good"]), "--run-dir", str(e["run_existing"])],
        lambda e: [str(e["run_existing"]), "--overwrite", "--resume"]),
    "train into a locked run dir": Case(
        lambda e: ["train", "monodepth2", *corridor_overrides(e["good"]), "--run-dir", str(e["run_locked"])],
        lambda e: [str(e["run_locked"]), "in use"], hold_lock=True),
    # cameras
    "NaN intrinsics": Case(_train("nan_K"), lambda e: [str(e["nan_K"] / "intrinsics.txt"), "not finite"]),
    "principal point 1e9": Case(_train("pp_far"), lambda e: [str(e["pp_far"] / "intrinsics.txt"), "1e+09"]),
    "principal point outside the image": Case(_train("pp_out"), lambda e: ["pp_out", "cx=5000"]),
    "zero focal length": Case(_train("zero_f"), lambda e: [str(e["zero_f"] / "intrinsics.txt"), "fx=0"]),
    # overrides and run mechanics
    "robustdepth config with a bad component value": Case(
        _lit("config", "rosam", "providers.rosam.ore_pose=bogus"), _lit("providers.rosam.ore_pose='bogus'")),
    "optim.max_steps=-5": Case(_train("good", **{"optim.max_steps": -5}), _lit("optim.max_steps=-5")),
    "optim.lr=0": Case(_train("good", **{"optim.lr": 0}), _lit("optim.lr=0")),
    "optim.lr=nan": Case(_train("good", **{"optim.lr": "nan"}), _lit("optim.lr=nan")),
    "train.ckpt_every=0": Case(_train("good", **{"train.ckpt_every": 0}), _lit("train.ckpt_every=0")),
    "train.log_every=0": Case(_train("good", **{"train.log_every": 0}), _lit("train.log_every=0")),
    "negative num_workers": Case(_train("good", **{"data.num_workers": -1}), _lit("data.num_workers=-1")),
    "train.device=tpu": Case(_train("good", **{"train.device": "tpu"}), _lit("train.device='tpu'")),
    "override YAML syntax error": Case(_train("good", **{"optim.lr": "[1"}), _lit("optim.lr=[1")),
    "unresolvable interpolation": Case(_train("good", **{"optim.lr": "${nope.x}"}), _lit("optim.lr", "nope.x")),
    "component config ValueError": Case(_train("good", **{"losses.photometric.weight": 0,
                                                          "losses.smoothness.weight": 0}), _lit("loss weight")),
    "too few samples for one batch": Case(_train("tiny"), lambda e: [str(e["tiny"]), "optim.batch_size"]),
    "--stop-at 0": Case(lambda e: [*_train("good")(e), "--stop-at", "0"], _lit("--stop-at 0")),
    # worlds
    "incomplete world": Case(
        lambda e: ["train", "monodepth2", "data.dataset=world", f"data.root={e['world_incomplete']}",
                   "--run-dir", str(e["root"] / "new_run")],
        lambda e: [str(e["world_incomplete"]), "robustdepth world generate --preset tiny --seed 3 --out"]),
    "world generate --seed -1": Case(lambda e: ["world", "generate", "--seed", "-1", "--out", str(e["root"] / "w")],
                                     _lit("--seed -1")),
    "world generate --workers 0": Case(
        lambda e: ["world", "generate", "--workers", "0", "--out", str(e["root"] / "w")], _lit("--workers 0")),
    "world show --frame 999": Case(lambda e: ["world", "show", str(e["world"]), "--frame", "999"],
                                   _lit("--frame 999", "0..2")),
    # checkpoints
    "checkpoint of another architecture": Case(
        lambda e: ["predict", str(e["ckpt_arch"]), str(e["image"]), "--out", str(e["root"] / "p")],
        lambda e: [str(e["ckpt_arch"]), "num_layers"]),
    "checkpoint with wrong keys": Case(
        lambda e: ["predict", str(e["ckpt_keys"]), str(e["image"]), "--out", str(e["root"] / "p")],
        lambda e: [str(e["ckpt_keys"]), "missing"]),
    "checkpoint without config": Case(
        lambda e: ["eval", str(e["ckpt_noconfig"])], lambda e: [str(e["ckpt_noconfig"]), "config"]),
    "checkpoint with NaN weights": Case(
        lambda e: ["predict", str(e["ckpt_nan"]), str(e["image"]), "--out", str(e["root"] / "p")],
        lambda e: [str(e["ckpt_nan"]), "not finite"]),
    "PNG given as a checkpoint": Case(
        lambda e: ["predict", str(e["ckpt_png"]), str(e["image"]), "--out", str(e["root"] / "p")],
        lambda e: [str(e["ckpt_png"]), "PNG image"]),
    "resume with another batch size": Case(
        lambda e: ["train", "--resume", str(e["run_existing"]), "optim.batch_size=3"],
        lambda e: ["optim.batch_size=3", "batch size 2"]),
    # eval and predict
    "eval --protocol nosuch": Case(lambda e: ["eval", str(e["ckpt"]), "--protocol", "nosuch"], _lit("nosuch")),
    "eval --max-frames -1": Case(lambda e: ["eval", str(e["ckpt"]), "--max-frames", "-1"], _lit("--max-frames -1")),
    "eval frame whose GT is all NaN": Case(
        lambda e: ["eval", str(e["ckpt"]), f"data.root={e['nan_gt']}", "--out", str(e["root"] / "r.json")],
        _lit("nan_gt", "no valid GT")),
    "predict --out is a file": Case(
        lambda e: ["predict", str(e["ckpt"]), str(e["image"]), "--out", str(e["out_file"])],
        lambda e: [str(e["out_file"])]),
    "image over the decompression-bomb limit": Case(
        lambda e: ["predict", str(e["ckpt"]), str(e["image"]), "--out", str(e["root"] / "p")],
        lambda e: [str(e["image"]), "decompression bomb"], patch={"MAX_IMAGE_PIXELS": 1000}),
}


PROGRESS = re.compile(r"\|\s*\d+/\d+ \[")  # a tqdm progress-bar refresh (stderr)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (what 'nothing changed' compares)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_dir()}


@pytest.fixture
def held_lock(env: dict[str, Path]) -> Iterator[None]:
    lock = RunLock(env["run_locked"])
    yield
    lock.release()


@pytest.mark.parametrize("name", list(CASES))
def test_cli_error_is_one_line_naming_the_culprit(name: str, env: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str],
                                                  request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    if case.hold_lock:
        request.getfixturevalue("held_lock")
    for attr, value in case.patch.items():
        monkeypatch.setattr(Image, attr, value)
    before = _tree(env["root"])
    code = main(case.argv(env))
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]", err)
             if line.strip() and not line.startswith("warning:") and not PROGRESS.search(line)]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in case.culprit(env):
        assert culprit in lines[0], f"{culprit!r} not named in: {lines[0]}"
    assert _tree(env["root"]) == before, "the failed command changed files on disk"
