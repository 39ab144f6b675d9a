"""nuScenes loader on constructed official tables (real CAM_FRONT frames from ../shared/realdata when present)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import color_key, translation_key
from robustdepth.data.nuscenes import scene_condition, static_filter
from tests.test_datasets_kitti import REAL, assert_metrics, constant_depth_checkpoint, hand_metrics, run_eval

REAL_CAM = REAL / "night_md4all" / "resources" / "n008-2018-07-26-12-13-50-0400__CAM_FRONT__1532621809112404.jpg"
K = [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]
CAM_ROT = Rotation.from_matrix([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]).as_quat()  # camera z = ego x


def wxyz(q: np.ndarray) -> list[float]:
    return [float(q[3]), float(q[0]), float(q[1]), float(q[2])]


def write_nuscenes(root: Path, speeds: dict[str, float]) -> None:
    """Two scenes x (sweep, keyframe, sweep) CAM_FRONT + one LIDAR_TOP keyframe, moving along x at ``speed``."""
    t = {k: [] for k in ("scene", "sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose", "log")}
    t["sensor"] = [{"token": "s_cam", "channel": "CAM_FRONT", "modality": "camera"},
                   {"token": "s_lid", "channel": "LIDAR_TOP", "modality": "lidar"}]
    t["calibrated_sensor"] = [
        {"token": "c_cam", "sensor_token": "s_cam", "translation": [0, 0, 0], "rotation": wxyz(CAM_ROT),
         "camera_intrinsic": K},
        {"token": "c_lid", "sensor_token": "s_lid", "translation": [0, 0, 0], "rotation": [1, 0, 0, 0],
         "camera_intrinsic": []}]
    descriptions = {"scene-0001": "Night, rain, parked cars", "scene-0002": "Wait at intersection"}
    for scene, speed in speeds.items():
        sample = f"{scene}_key"
        t["scene"].append({"token": scene, "name": scene, "description": descriptions[scene],
                           "first_sample_token": sample, "last_sample_token": sample, "nbr_samples": 1})
        t["sample"].append({"token": sample, "scene_token": scene, "timestamp": 1_000_000, "prev": "", "next": ""})
        tokens = [f"{scene}_cam{i}" for i in range(3)]
        for i, tok in enumerate(tokens):
            ts = 1_000_000 + (i - 1) * 100_000
            t["ego_pose"].append({"token": f"{tok}_ego", "translation": [speed * (i - 1) * 0.1, 0, 0],
                                  "rotation": [1, 0, 0, 0], "timestamp": ts})
            folder = "samples" if i == 1 else "sweeps"
            t["sample_data"].append({
                "token": tok, "sample_token": sample, "ego_pose_token": f"{tok}_ego",
                "calibrated_sensor_token": "c_cam",
                "timestamp": ts, "fileformat": "jpg", "is_key_frame": i == 1, "height": 900, "width": 1600,
                "filename": f"{folder}/CAM_FRONT/{tok}.jpg", "prev": tokens[i - 1] if i else "",
                "next": tokens[i + 1] if i < 2 else ""})
            (root / folder / "CAM_FRONT").mkdir(parents=True, exist_ok=True)
            if REAL_CAM.is_file():
                shutil.copy(REAL_CAM, root / folder / "CAM_FRONT" / f"{tok}.jpg")
            else:
                Image.new("RGB", (1600, 900), (90, 90, 90)).save(root / folder / "CAM_FRONT" / f"{tok}.jpg")
        t["sample_data"].append({
            "token": f"{scene}_lid", "sample_token": sample, "ego_pose_token": f"{tokens[1]}_ego",
            "calibrated_sensor_token": "c_lid", "timestamp": 1_000_000, "fileformat": "pcd", "is_key_frame": True,
            "height": 0, "width": 0, "filename": f"samples/LIDAR_TOP/{scene}.pcd.bin", "prev": "", "next": ""})
        (root / "samples" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
        pts = np.array([[5, 0, 0, 1, 0], [10, -1, -1, 1, 0], [20, 2, 1, 1, 0], [0.5, 0, 0, 1, 0]], np.float32)
        pts.tofile(root / "samples" / "LIDAR_TOP" / f"{scene}.pcd.bin")
    (root / "v1.0-mini").mkdir(parents=True)
    for name, rows in t.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows))
    (root / "splits.json").write_text(json.dumps({"train": ["scene-0001", "scene-0002"],
                                                  "val": ["scene-0001", "scene-0002"]}))


def overrides(root: Path, **extra: str) -> list[str]:
    opts = f"data.options={{version: v1.0-mini, scene_splits: {root / 'splits.json'}}}"
    return ["data.dataset=nuscenes", f"data.root={root}", opts, "data.height=96", "data.width=160",
            "data.num_workers=0", *[f"{k}={v}" for k, v in extra.items()]]


def test_md4all_condition_rules() -> None:
    assert scene_condition("Night, rain") == "night-rain"
    assert scene_condition("Rain, peds") == "day-rain"
    assert scene_condition("Parking lot") == "day-clear"


def test_triplets_k_speed_conditions_and_gt_projection(tmp_path: Path) -> None:
    write_nuscenes(tmp_path, {"scene-0001": 5.0, "scene-0002": 0.2})
    cfg = load_config("monodepth2", overrides(tmp_path, **{"data.train_conditions": "[night,day-clear]",
                                                            "augment.flip_p": "0.0"}))
    ds = build_dataset(cfg, "train", train=True)
    assert [it.condition for it in ds.items] == ["night", "day-clear"]
    sample = ds[0]
    assert sample[translation_key(-1)].item() == pytest.approx(0.5)  # 5 m/s x 0.1 s
    assert sample["K"][0, 0].item() == pytest.approx(1266.4 * 160 / 1600)
    assert sample["K"][1, 2].item() == pytest.approx(491.5 * 96 / 900)
    gt = ds.items[0].sequence.depth_gt(1, "night")
    assert gt.shape == (900, 1600) and np.count_nonzero(gt) == 3  # the 0.5 m point is under the 1 m minimum
    assert gt[491, 816] == pytest.approx(5.0)
    assert gt[int(491.5 + 126.64), int(816.3 + 126.64)] == pytest.approx(10.0)


def test_static_filter_drops_slow_train_keyframes(tmp_path: Path) -> None:
    write_nuscenes(tmp_path, {"scene-0001": 5.0, "scene-0002": 0.2})
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["scene-0001", "scene-0002"], "val": []}))
    result = static_filter(tmp_path, "v1.0-mini", str(tmp_path / "splits.json"))
    assert result["keep"] == ["scene-0001_key"] and result["dropped"] == 1


def test_eval_nuscenes_md4all_reproduces_hand_metrics(tmp_path: Path) -> None:
    write_nuscenes(tmp_path, {"scene-0001": 5.0, "scene-0002": 0.2})
    over = overrides(tmp_path)
    ckpt = constant_depth_checkpoint(tmp_path / "ck.pt", 10.0, over)
    res = run_eval(ckpt, "nuscenes_md4all", tmp_path / "r.json", [])
    assert res["counts"] == {"night": 1, "day-clear": 1, "all": 2}
    assert_metrics(res["night"], hand_metrics([5, 10, 20], [10, 10, 10]))  # metric: no scaling


def test_daytime_norm_reaches_every_network_input() -> None:
    """Jittered inputs, the student's degraded input AND the un-jittered clean / degraded frames that the teacher
    and L_c's clean pass see get the condition's statistics; the loss frames stay raw."""
    import torch

    from robustdepth.data.base import FrameItem
    from robustdepth.data.nuscenes import DAYTIME_NORM, DaytimeNormHook, daytime_remap

    g = torch.Generator().manual_seed(0)
    clean, aug, degraded, degraded_aug = (torch.rand(3, 8, 8, generator=g) for _ in range(4))
    sample = {color_key(0): clean.clone(), color_key(0, aug=True): aug.clone(), "degraded": degraded.clone(),
              "degraded_aug": degraded_aug.clone(), "is_degraded": True, "degraded_condition": "night"}
    item = FrameItem(None, 0, "day-clear", {})  # type: ignore[arg-type]
    DaytimeNormHook(DAYTIME_NORM["nuscenes"], train=True)(item, sample, g, False, lambda x: x)
    day, night = DAYTIME_NORM["nuscenes"]["day"], DAYTIME_NORM["nuscenes"]["night"]
    assert torch.equal(sample[color_key(0)], clean) and torch.equal(sample["degraded"], degraded)
    assert torch.allclose(sample[color_key(0, aug=True)], daytime_remap(aug, *day))
    assert torch.allclose(sample["clean_input"], daytime_remap(clean, *day))
    assert torch.allclose(sample["degraded_aug"], daytime_remap(degraded_aug, *night))
    assert torch.allclose(sample["degraded_input"], daytime_remap(degraded, *night))
