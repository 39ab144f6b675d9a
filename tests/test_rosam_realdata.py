"""RoSAMDepth / Syn2Real on real-dataset layouts (constructed nuScenes tables, RobotCar fixture): the day-clear
histogram prior reads only day-clear TRAINING frames, and the real-data recipes resolve and train a step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustdepth.configure import load_config
from robustdepth.data import DataError
from tests.test_datasets_nuscenes import overrides as nuscenes_overrides
from tests.test_datasets_nuscenes import write_nuscenes

QUICK = ["optim.batch_size=2", "train.progress=false", "train.log_every=1000", "train.image_every=100000",
         "train.ckpt_every=100000"]


def _frozen(cfg_over: list[str], path: Path, *extra: str) -> Path:
    """A random-init checkpoint on this data (extra: e.g. no photometric loss = no pose net, like Φ_syn)."""
    from robustdepth.training.trainer import Trainer

    trainer = Trainer(load_config("monodepth2", [*cfg_over, *QUICK, *extra]), path)
    ckpt = trainer.save()
    trainer.close()
    return ckpt


@pytest.fixture(scope="module")
def nuscenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scene-0001 'Night, rain' (label night) and scene-0002 day-clear, one keyframe each with sweeps."""
    root = tmp_path_factory.mktemp("nuscenes")
    write_nuscenes(root, {"scene-0001": 5.0, "scene-0002": 3.0})
    return root


def test_day_histogram_reads_only_day_clear_training_frames(nuscenes: Path, tmp_path: Path) -> None:
    from robustdepth.training.day_histogram import compute_day_histogram

    # Φ_day's own config trains on every condition: the prior must still pool day-clear frames only
    day = _frozen(nuscenes_overrides(nuscenes, **{"data.train_conditions": "[day-clear,night]"}), tmp_path / "day")
    out = compute_day_histogram(day, tmp_path / "hist.json", bins=33)
    data = json.loads(out.read_text())
    assert data["frames"] == 1 and data["conditions"] == ["day-clear"], "the night scene is not day-clear"
    assert data["filters"].startswith("training")
    assert np.isclose(sum(data["probabilities"]), 1.0) and len(data["probabilities"]) == 33
    # the training filters apply: a static filter that keeps only the night keyframe leaves no day-clear frame
    keep = tmp_path / "static.json"
    keep.write_text(json.dumps({"keep": ["scene-0001_key"]}))
    opts = f"data.options={{version: v1.0-mini, scene_splits: {nuscenes / 'splits.json'}, static_filter: {keep}}}"
    with pytest.raises(DataError, match="no samples|no day-clear training frames"):
        compute_day_histogram(day, tmp_path / "hist2.json", bins=33, overrides=[opts])


def _train_one_step(cfg: object, run_dir: Path) -> dict[str, float]:
    from robustdepth.training.trainer import Trainer

    trainer = Trainer(cfg, run_dir)
    try:
        return trainer.train_step(next(trainer._batches()))
    finally:
        trainer.close()


def _assert_rosam_step(logs: dict[str, float]) -> None:
    for name in ("rosam_distill", "rosam_src", "rosam_rgl"):
        assert np.isfinite(logs[f"loss/{name}"]) and logs[f"loss/{name}"] >= 0, name
    assert 0 < logs["rosam_distill/m_out"] <= 1 and 0.1 < logs["rosam_distill/w_rel"] <= 1.1
    assert logs["grad_norm"] > 0


def test_rosam_nuscenes_recipe_resolves_and_trains_a_step_without_degradations(nuscenes: Path,
                                                                                tmp_path: Path) -> None:
    from robustdepth.providers.masks import write_mask_cache
    from robustdepth.training.day_histogram import compute_day_histogram

    cfg = load_config("rosam_nuscenes")
    assert cfg.degrade.mode == "none" and not cfg.degrade.rules
    assert cfg.providers.teacher.sees == cfg.providers.day_model.sees == "clean"
    assert list(cfg.data.train_conditions) == ["day-clear", "day-rain", "night"]
    assert (cfg.model.min_depth, cfg.model.max_depth) == (0.1, 80.0)
    assert (cfg.optim.batch_size, cfg.optim.epochs, cfg.optim.lr) == (10, 10, 8e-5)
    assert cfg.losses.syn2real_kl.weight == 0.001 and cfg.eval.protocol == "nuscenes_md4all"
    assert cfg.providers.teacher.recipe == "nuscenes_md4all_dd" and not cfg.providers.teacher.share_data

    data = nuscenes_overrides(nuscenes)
    both = [*data, "data.train_conditions=[day-clear,night]"]
    day = _frozen(both, tmp_path / "day")
    teacher = _frozen(both, tmp_path / "teacher", "losses.photometric.weight=0")  # Φ_syn: no pose net
    assert "pose" not in torch.load(teacher, weights_only=True)["models"]
    prior = compute_day_histogram(day, tmp_path / "day_hist.json")
    cache = tmp_path / "masks"
    static = tmp_path / "static.json"  # the recipe's static filter (md4all's), here keeping both keyframes
    static.write_text(json.dumps({"keep": ["scene-0001_key", "scene-0002_key"]}))
    opts = f"data.options={{version: v1.0-mini, scene_splits: {nuscenes / 'splits.json'}, static_filter: {static}}}"
    over = [*[o for o in data if not o.startswith("data.options")], opts, *QUICK, "optim.max_steps=1",
            f"providers.masks.cache={cache}", f"providers.teacher.checkpoint={teacher}",
            f"providers.day_model.checkpoint={day}", f"model.init_checkpoint={teacher}",
            f"losses.syn2real_kl.prior_path={prior}", "losses.rosam_src.max_pixels=256"]
    cfg = load_config("rosam_nuscenes", over)
    meta = write_mask_cache(cfg, cache, progress=False)
    assert meta["frames"] == 2, "both scenes (night and day-clear): RA trains on every condition"
    logs = _train_one_step(cfg, tmp_path / "student")
    _assert_rosam_step(logs)
    assert np.isfinite(logs["loss/syn2real_kl"])


def test_rosam_robotcar_recipe_resolves_and_trains_a_step_without_degradations(tmp_path: Path) -> None:
    from tests.test_datasets_robotcar import RUN, needs_real, robotcar_root

    cfg = load_config("rosam_robotcar")
    assert cfg.degrade.mode == "none" and cfg.providers.teacher.sees == cfg.providers.day_model.sees == "clean"
    assert list(cfg.data.train_conditions) == ["day", "night"] and cfg.model.max_depth == 80.0
    assert cfg.eval.protocol == "robotcar_md4all" and cfg.providers.teacher.recipe == "robotcar_md4all_dd"
    assert (cfg.optim.batch_size, cfg.optim.epochs) == (10, 10) and cfg.losses.syn2real_kl.weight == 0.01
    if needs_real.args[0]:  # the RobotCar fixture links the real SDK models and a real night frame
        pytest.skip(needs_real.kwargs["reason"])
    from robustdepth.providers.masks import write_mask_cache

    root = robotcar_root(tmp_path)
    data = ["data.dataset=robotcar", f"data.root={root}", "data.height=96", "data.width=160", "data.num_workers=0",
            "data.options={runs: [" + RUN + "]}", "data.train_conditions=[day,night]"]
    day = _frozen(data, tmp_path / "day", "optim.batch_size=1")  # the fixture has one night frame
    teacher = _frozen(data, tmp_path / "teacher", "optim.batch_size=1", "losses.photometric.weight=0")
    cache = tmp_path / "masks"
    cfg = load_config("rosam_robotcar", [*data, *QUICK, "optim.batch_size=1", "optim.max_steps=1",
                                         f"providers.masks.cache={cache}", f"providers.teacher.checkpoint={teacher}",
                                         f"providers.day_model.checkpoint={day}", f"model.init_checkpoint={teacher}",
                                         "losses.syn2real_kl.weight=0", "losses.rosam_src.max_pixels=256"])
    write_mask_cache(cfg, cache, progress=False)
    _assert_rosam_step(_train_one_step(cfg, tmp_path / "student"))
