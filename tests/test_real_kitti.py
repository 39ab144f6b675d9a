"""benchmarks/real_kitti.py without training: what each arm is given and how the arms are compared.

Pins: the more-steps control trains twice the budget with its lr decay and checkpoints at the same fractions of
its own schedule; the overlay reaches every arm; a comparison is method − baseline paired by seed and by LiDAR
frame name / pose snippet (record order does not matter), so a shift far below the frame spread is resolved.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pytest

from tests.conftest import REALDATA, load_benchmark


@pytest.fixture(scope="module")
def rk() -> Any:
    return load_benchmark("real_kitti")


def args(**kw: Any) -> argparse.Namespace:
    base = {"steps": 400, "batch_size": 8, "lr": 1e-4, "workers": 0, "overlay": "fast", "world_root": "unused"}
    return argparse.Namespace(**{**base, **kw})


def test_every_arm_shares_the_overlay_and_only_the_control_doubles_the_budget(rk: Any) -> None:
    assert rk.arm_recipe("real", "fast") == "kitti_real_monodepth2+fast"
    assert rk.arm_recipe("world_to_real", "") == "kitti_real_finetune"
    assert [rk.arm_steps(a, 400) for a in rk.ARMS] == [400 if a != "real_2x" else 800 for a in rk.ARMS]
    assert {rk.RECIPES["real"], rk.RECIPES["real_2x"]} == {"kitti_real_monodepth2"}  # same data and recipe


@pytest.mark.skipif(not (REALDATA / "kitti_raw_2011_09_26_drive_0095").is_dir(),
                    reason="../shared/realdata (real KITTI frames) not present")
def test_the_control_decays_at_three_quarters_of_its_own_schedule(rk: Any) -> None:
    def value(overrides: list[str], key: str) -> float:
        return float(next(o.split("=", 1)[1] for o in overrides if o.startswith(key + "=")))

    real = rk.arm_overrides("real", 0, args(), None)
    control = rk.arm_overrides("real_2x", 0, args(), None)
    per_epoch = 324 // 8  # the real training targets at batch 8
    assert value(real, "optim.decay_every_epochs") == pytest.approx(0.75 * 400 / per_epoch, rel=1e-5)
    assert value(control, "optim.decay_every_epochs") == pytest.approx(0.75 * 800 / per_epoch, rel=1e-5)
    assert value(real, "train.ckpt_every") == 100 and value(control, "train.ckpt_every") == 200
    assert "train.seed=0" in control and not any(o.startswith("model.init_checkpoint") for o in control)


def scores(abs_rel: np.ndarray, ate: np.ndarray, shuffle: bool = False) -> dict[int, dict[str, Any]]:
    """Per-seed score records as score_run caches them (frames by name, snippets in order)."""
    out = {}
    for s in range(abs_rel.shape[0]):
        names = [f"04/clear/{i:06d}" for i in range(abs_rel.shape[1])]
        pairs = list(zip(names, abs_rel[s].tolist(), strict=True))
        out[s] = {"frame_abs_rel": dict(pairs[::-1] if shuffle else pairs), "snippet_ate": ate[s].tolist()}
    return out


def test_comparisons_are_method_minus_baseline_paired_by_frame_and_snippet(rk: Any) -> None:
    rng = np.random.default_rng(0)
    frames = 0.2 + 0.1 * rng.random((2, 11))  # frame difficulty ≫ the effect
    snippets = 1.0 + rng.random((2, 50))
    runs = {
        "real": scores(frames, snippets),
        "real_2x": scores(frames - 0.001, snippets),
        "world": scores(frames + 0.03 * rng.random((2, 11)), snippets + 0.2),
        "world_to_real": scores(frames - 0.01, snippets + 0.05, shuffle=True),
    }
    out = {(c["method"], c["baseline"]): c for c in rk.comparisons(runs, [0, 1])}
    tuned = out[("world_to_real", "real")]
    assert tuned["abs_rel"]["mean"] == pytest.approx(-0.01, abs=1e-9)
    assert tuned["abs_rel"]["verdict"] == "resolved better"  # paired by name despite the shuffled order
    assert tuned["ate"]["mean"] == pytest.approx(0.05, abs=1e-9) and tuned["ate"]["verdict"] == "resolved worse"
    control = out[("world_to_real", "real_2x")]
    assert control["abs_rel"]["mean"] == pytest.approx(-0.009, abs=1e-9)
    assert out[("world", "real")]["ate"]["mean"] == pytest.approx(0.2, abs=1e-9)
    lines = rk.verdict(rk.comparisons(runs, [0, 1])).splitlines()
    assert len(lines) == len(rk.COMPARISONS) and "world → real − real only (" in lines[0]
