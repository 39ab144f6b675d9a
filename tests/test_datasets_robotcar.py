"""RobotCar loader: real RNW split files, real SDK camera models and real frames (../shared/realdata), a
constructed GT cloud / laser log, and the md4all protocol on a hand-checked fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import color_key
from robustdepth.data.robotcar import (
    GT_SUBDIR,
    accumulate_laser,
    project_camera_points,
    read_camera_model,
    read_robotcar_split,
)
from tests.test_datasets_kitti import REAL, assert_metrics, constant_depth_checkpoint, hand_metrics, run_eval

SDK = REAL / "robotcar_sdk_calib"
SPLITS = REAL / "splits_steps_rnw_nuscenes_robotcar" / "split_files" / "robotcar"
NIGHT = REAL / "night_md4all" / "resources" / "1418756721422679.png"
needs_real = pytest.mark.skipif(not (SDK.is_dir() and SPLITS.is_dir() and NIGHT.is_file()),
                                reason="../shared/realdata (RobotCar SDK calib, RNW splits, frames) not present")
RUN = "2014-12-16-18-44-24"


@needs_real
def test_real_rnw_splits_and_sdk_model() -> None:
    assert len(read_robotcar_split(SPLITS / RUN / "test_split.txt")) == 411
    assert len(read_robotcar_split(SPLITS / "2014-12-09-13-21-02" / "test_split.txt")) == 159
    train = read_robotcar_split(SPLITS / RUN / "train_split.txt")
    assert train[0] == "1418755539083324" and all(s.isdigit() for s in train)
    K, G = read_camera_model(SDK / "models", "stereo/left")
    assert (K[0, 0], K[0, 2], K[1, 2]) == pytest.approx((983.044006, 643.646973, 493.378998))
    depth = project_camera_points(np.array([[10.0], [1.0], [0.5]]), K, G, (960, 1280))  # x fwd, y right, z down
    assert depth[round(493.379 + 49.15), round(643.647 + 98.3)] == pytest.approx(10.0)


def robotcar_root(tmp: Path) -> Path:
    root = tmp / "robotcar"
    (root / RUN / "stereo" / "left").mkdir(parents=True)
    for ts in (100, 200, 300):
        (root / RUN / "stereo" / "left" / f"{ts}.png").symlink_to(NIGHT)
    (root / "models").symlink_to(SDK / "models")
    (root / "extrinsics").symlink_to(SDK / "extrinsics")
    (root / "splits" / RUN).mkdir(parents=True)
    (root / "splits" / RUN / "train_split.txt").write_text("# header\n200 1\n")
    (root / "splits" / RUN / "test_split.txt").write_text("200\n")
    return root


@needs_real
def test_night_triplet_crop_and_k(tmp_path: Path) -> None:
    root = robotcar_root(tmp_path)
    cfg = load_config("monodepth2", ["data.dataset=robotcar", f"data.root={root}", "data.height=320",
                                     "data.width=544", "data.train_conditions=[night]",
                                     "data.options={runs: [" + RUN + "]}"])
    ds = build_dataset(cfg, "train", train=True)
    assert len(ds) == 1 and ds.items[0].condition == "night" and ds.items[0].index == 1
    sample = ds[0]
    assert sample[color_key(-1)].shape == (3, 320, 544)
    assert sample["K"][0, 0].item() == pytest.approx(983.044 * 544 / 1280, rel=1e-5)
    assert sample["K"][1, 2].item() == pytest.approx(493.379 * 320 / 768, rel=1e-5)  # crop keeps the top rows


@needs_real
def test_laser_accumulation_places_scans_with_vo(tmp_path: Path) -> None:
    """Straight drive at 1 m per 0.1 s: a scan point 10 m ahead, 0.1 s after the image, is 11 m away then."""
    run = tmp_path / RUN
    (run / "lms_front").mkdir(parents=True)
    (run / "vo").mkdir()
    rows = [f"{t + 100_000},{t},1.0,0,0,0,0,0" for t in range(0, 1_000_000, 100_000)]
    (run / "vo" / "vo.csv").write_text("source,destination,x,y,z,roll,pitch,yaw\n" + "\n".join(rows) + "\n")
    (run / "lms_front.timestamps").write_text("600000 1\n")
    np.array([[10.0, 0.0, 1.0]]).tofile(run / "lms_front" / "600000.bin")  # x, y, reflectance
    zero = tmp_path / "ext"
    zero.mkdir()
    for name in ("lms_front", "stereo"):
        (zero / f"{name}.txt").write_text("0 0 0 0 0 0\n")
    cloud = accumulate_laser(run, zero, 500_000)
    assert cloud[:, 0] == pytest.approx([11.0, 0.0, 0.0])


@needs_real
def test_eval_robotcar_md4all_reproduces_hand_metrics(tmp_path: Path) -> None:
    root = robotcar_root(tmp_path)
    gt_dir = root / RUN / GT_SUBDIR
    gt_dir.mkdir(parents=True)
    np.array([[5, 10, 40], [0, 1, -1], [0.5, 2, 2]], np.float32).tofile(gt_dir / "200.pcd.bin")  # x fwd = depth
    over = ["data.dataset=robotcar", f"data.root={root}", "data.height=320", "data.width=544", "data.num_workers=0",
            "data.options={runs: [" + RUN + "]}"]
    ckpt = constant_depth_checkpoint(tmp_path / "ck.pt", 10.0, over)
    res = run_eval(ckpt, "robotcar_md4all", tmp_path / "r.json", [])
    assert res["counts"]["night"] == 1
    assert_metrics(res["night"], hand_metrics([5, 10, 40], [10, 10, 10]))


def test_vo_poses_give_metric_translation_between_frames(tmp_path: Path) -> None:
    """Velocity supervision on RobotCar: frame poses interpolated from vo/vo.csv at the image times (1 m / 0.1 s)."""
    from robustdepth.data.robotcar import RobotCarSequence

    run = tmp_path / RUN
    (run / "stereo" / "left").mkdir(parents=True)
    for stamp in (150_000, 350_000, 2_000_000):
        (run / "stereo" / "left" / f"{stamp}.png").touch()
    (run / "vo").mkdir()
    rows = [f"{t + 100_000},{t},1.0,0,0,0,0,0" for t in range(0, 1_000_000, 100_000)]
    (run / "vo" / "vo.csv").write_text("source,destination,x,y,z,roll,pitch,yaw\n" + "\n".join(rows) + "\n")
    seq = RobotCarSequence(tmp_path, RUN, "stereo/left", tmp_path / "models")
    p0, p1 = seq.pose(0), seq.pose(1)
    assert np.linalg.norm(p1[:3, 3] - p0[:3, 3]) == pytest.approx(2.0)
    assert seq.pose(2)[0, 3] == pytest.approx(10.0)  # after the last VO row: the nearest (last) VO pose
    assert RobotCarSequence(tmp_path / "none", RUN, "stereo/left", tmp_path).pose(0) is None  # no VO at all
