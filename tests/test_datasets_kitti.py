"""KITTI raw loader: real MD2 split files, real 2011_09_26 calibration and real frames (read in place from
../shared/realdata; skipped when absent), constructed velodyne scans / GT PNGs, and `robustdepth eval` on
hand-checked fixtures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.checkpoint import FORMAT, code_version
from robustdepth.cli import main
from robustdepth.config import to_dict
from robustdepth.configure import apply_overrides, load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import color_key
from robustdepth.data.kitti import (
    export_gt,
    project_velodyne,
    read_calib_file,
    read_split_file,
    velodyne_to_image,
)
from robustdepth.evaluation import get_protocol, write_results
from robustdepth.evaluation.runner import evaluate_model
from robustdepth.inference import DepthModel
from robustdepth.networks import DepthNet

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
SPLITS = REAL / "splits_monodepth2" / "splits"
CALIB = REAL / "kitti_calib_2011_09_26" / "test_data" / "kitti" / "2011_09_26_calib" / "2011_09_26"
FRAMES = REAL / "kitti_raw_seq_demo_slam" / "input"
DRIVE = "2011_09_26/2011_09_26_drive_0001_sync"  # the demo frames' drive id is unknown; any name fits the layout
needs_real = pytest.mark.skipif(not (SPLITS.is_dir() and CALIB.is_dir() and FRAMES.is_dir()),
                                reason="../shared/realdata (KITTI splits, calibration, frames) not present")


def constant_depth_checkpoint(path: Path, depth: float, overrides: list[str]) -> Path:
    """A real DepthNet checkpoint whose output is ``depth`` metres everywhere (zeroed scale-0 head, bias set),
    so evaluation results can be computed by hand."""
    cfg = load_config("monodepth2", overrides)
    net = DepthNet(cfg.model.num_layers, scales=list(cfg.model.scales))
    d_min, d_max = 1 / cfg.model.max_depth, 1 / cfg.model.min_depth
    sigma = (1 / depth - d_min) / (d_max - d_min)
    head = net.decoder.decoder[net.decoder._dispconv_index[0]].conv
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(math.log(sigma / (1 - sigma)))
    payload = {"format": FORMAT, "version": {k: str(v) for k, v in code_version().items()},
               "config": to_dict(cfg), "models": {"depth": net.state_dict()}, "step": 0}
    torch.save(payload, path)  # not save_checkpoint: its torch.__version__ (TorchVersion) fails weights_only loads
    return path


def run_eval(ckpt: Path, protocol: str, out: Path, overrides: list[str]) -> dict:
    """What ``robustdepth eval CKPT --protocol P --out OUT`` runs (cmd_eval's engine, without its table print)."""
    model = DepthModel.from_checkpoint(ckpt, device="cpu")
    cfg = apply_overrides(model.config, overrides)
    proto = get_protocol(protocol)
    write_results(out, evaluate_model(model, cfg, proto, progress=False).summary(), proto)
    return json.loads(out.read_text())


def hand_metrics(gt: list[float], pred: list[float]) -> dict[str, float]:
    g, p = np.array(gt), np.array(pred)
    ratio = np.maximum(g / p, p / g)
    return {"abs_rel": float(np.mean(np.abs(g - p) / g)), "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
            "a1": float(np.mean(ratio < 1.25))}


def assert_metrics(result: dict, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-4), name


# ----------------------------------------------------------------------------------------- fixtures


def kitti_root(tmp: Path, frames: range = range(0, 12), right: bool = True) -> Path:
    """ROOT in the raw layout: real calibration + real frames linked in as image_02 (and image_03)."""
    root = tmp / "kitti"
    date = root / "2011_09_26"
    date.mkdir(parents=True)
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        (date / name).symlink_to(CALIB / name)
    for cam in ("image_02", "image_03") if right else ("image_02",):
        folder = root / DRIVE / cam / "data"
        folder.mkdir(parents=True)
        for i in frames:
            (folder / f"{i:010d}.png").symlink_to(FRAMES / f"{i:010d}.png")
    return root


def write_split(splits: Path, name: str, file: str, lines: list[str]) -> None:
    (splits / name).mkdir(parents=True, exist_ok=True)
    (splits / name / file).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------- tests


@needs_real
def test_real_md2_split_files_parse_with_official_counts() -> None:
    counts = {("eigen_zhou", "train_files.txt"): 39810, ("eigen_zhou", "val_files.txt"): 4424,
              ("eigen", "test_files.txt"): 697, ("eigen_benchmark", "test_files.txt"): 652}
    for (split, file), n in counts.items():
        entries = read_split_file(SPLITS / split / file)
        assert len(entries) == n
    first = read_split_file(SPLITS / "eigen_benchmark" / "test_files.txt")[0]
    assert (first.folder, first.frame, first.side) == ("2011_09_26/2011_09_26_drive_0002_sync", 69, "l")
    assert first.camera == 2
    assert {e.side for e in read_split_file(SPLITS / "eigen_zhou" / "train_files.txt")} == {"l", "r"}


@needs_real
def test_real_calibration_parses_to_kitti_p_rect() -> None:
    calib = read_calib_file(CALIB / "calib_cam_to_cam.txt")
    assert calib["P_rect_02"][[0, 2, 6]] == pytest.approx([721.5377, 609.5593, 172.854])
    P, shape = velodyne_to_image(CALIB, 2)
    assert shape == (375, 1242)
    # A point 20 m ahead of the velodyne projects near the principal point (the cameras sit ~0.27 m ahead).
    u, v, w = P @ np.array([20.0, 0.0, 0.0, 1.0])
    assert abs(u / w - 609.6) < 40 and abs(v / w - 172.9) < 60


def test_velodyne_projection_lands_where_expected_and_nearest_wins() -> None:
    """Synthetic camera: velodyne x fwd → camera z; f = 100, principal point (50, 40)."""
    R = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=np.float64)
    K = np.array([[100, 0, 50, 0], [0, 100, 40, 0], [0, 0, 1, 0]], dtype=np.float64)
    T = np.eye(4)
    T[:3, :3] = R
    P = K @ T
    points = np.array([[10, 0, 0, 1],     # centre: u=50, v=40 -> pixel (49, 39) after MD2's -1
                       [5, 0, 0, 1],      # same pixel, nearer: wins
                       [10, -1, -0.5, 1],  # u = 50 + 10 = 60, v = 40 + 5 = 45 -> (59, 44)
                       [-3, 0, 0, 1]],    # behind the sensor: dropped
                      dtype=np.float64)
    depth = project_velodyne(points, P, (80, 100))
    assert depth[39, 49] == pytest.approx(5.0)
    assert depth[44, 59] == pytest.approx(10.0)
    assert np.count_nonzero(depth) == 2
    depth_x = project_velodyne(points, P, (80, 100), vel_depth=True)
    assert depth_x[44, 59] == pytest.approx(10.0)


@needs_real
def test_training_triplets_md2_k_and_stereo_slot_from_real_frames(tmp_path: Path) -> None:
    root = kitti_root(tmp_path)
    write_split(tmp_path / "splits", "eigen_zhou", "train_files.txt", [f"{DRIVE} 5 l", f"{DRIVE} 7 r"])
    cfg = load_config("monodepth2", ["data.dataset=kitti", f"data.root={root}", "data.height=96", "data.width=320",
                                     f"data.options={{splits_dir: {tmp_path / 'splits'}, png: true, stereo: true}}",
                                     "augment.flip_p=0.0", "augment.color_jitter_p=0.0"])
    ds = build_dataset(cfg, "train", train=True)
    sample = ds[0]
    assert torch.allclose(sample["K"], torch.tensor([[0.58 * 320, 0, 160], [0, 1.92 * 96, 48], [0, 0, 1]]))
    prev = Image.open(FRAMES / "0000000004.png").convert("RGB").resize((320, 96), Image.Resampling.LANCZOS)
    expected = torch.from_numpy(np.asarray(prev, dtype=np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(sample[color_key(-1)], expected, atol=1e-6)
    assert not torch.allclose(sample[color_key(1)], expected)
    assert sample[color_key("s")].shape == (3, 96, 320)
    assert sample["stereo_T"][0, 3] == pytest.approx(-0.1)  # left image, unflipped (MD2's sign convention)
    assert ds[1]["stereo_T"][0, 3] == pytest.approx(0.1)
    assert ds.items[1].sequence.name.endswith("image_03")


@needs_real
def test_jpeg_default_reports_the_missing_file(tmp_path: Path) -> None:
    root = kitti_root(tmp_path, right=False)
    write_split(tmp_path / "splits", "eigen_zhou", "train_files.txt", [f"{DRIVE} 5 l"])
    cfg = load_config("monodepth2", ["data.dataset=kitti", f"data.root={root}",
                                     f"data.options={{splits_dir: {tmp_path / 'splits'}}}"])
    with pytest.raises(Exception, match=r"0000000005\.jpg"):
        build_dataset(cfg, "train", train=True)[0]
    assert main(["data", "check", str(root), "--dataset", "kitti", "--splits-dir", str(tmp_path / "splits"),
                 "--split", "eigen_zhou"]) == 0  # detects PNG and says so


@needs_real
def test_weatherkitti_pairs_fill_degraded_slots_and_eval_conditions(tmp_path: Path) -> None:
    root = kitti_root(tmp_path, right=False)
    weather = root / DRIVE / "image_02" / "raingan" / "data"
    weather.mkdir(parents=True)
    for i in range(4, 7):
        dark = (np.asarray(Image.open(FRAMES / f"{i:010d}.png").convert("RGB")) // 2).astype(np.uint8)
        Image.fromarray(dark).save(weather / f"{i:010d}.png")
    write_split(tmp_path / "splits", "eigen_zhou", "train_files.txt", [f"{DRIVE} 5 l"])
    write_split(tmp_path / "splits", "eigen", "test_files.txt", [f"{DRIVE} 5 l"])
    opts = f"data.options={{splits_dir: {tmp_path / 'splits'}, png: true, weatherkitti: true, weather_p: 1.0, " \
           "weather_conditions: [raingan]}"
    cfg = load_config("monodepth2", ["data.dataset=kitti", f"data.root={root}", opts, "augment.flip_p=0.0",
                                     "augment.color_jitter_p=0.0"])
    sample = build_dataset(cfg, "train", train=True)[0]
    assert sample["is_degraded"] and sample["degraded_condition"] == "rain"
    ratio = sample["degraded"].mean() / sample[color_key(0)].mean()
    assert 0.45 < float(ratio) < 0.55  # the halved (pixel-aligned) weather copy
    items = build_dataset(cfg, "test", train=False).items
    assert [it.condition for it in items] == ["clear", "raingan"]


@needs_real
def test_eval_kitti_eigen_protocols_reproduce_hand_metrics(tmp_path: Path) -> None:
    """Velodyne points at x = 10, 20, 40 m inside the Garg crop; the model predicts 10 m everywhere."""
    root = kitti_root(tmp_path, frames=range(0, 1), right=False)
    velo = root / DRIVE / "velodyne_points" / "data"
    velo.mkdir(parents=True)
    scan = np.array([[10, 0, -1.0, 0.5], [20, 2, -1.5, 0.5], [40, -3, -1.6, 0.5], [-5, 0, 0, 0.5]], np.float32)
    scan.tofile(velo / "0000000000.bin")
    write_split(tmp_path / "splits", "eigen", "test_files.txt", [f"{DRIVE} 0 l"])
    overrides = ["data.dataset=kitti", f"data.root={root}", f"data.options={{splits_dir: {tmp_path / 'splits'}, "
                 "png: true}", "data.num_workers=0"]
    ckpt = constant_depth_checkpoint(tmp_path / "ck.pt", 10.0, overrides)
    mono = run_eval(ckpt, "kitti_eigen", tmp_path / "mono.json", [])
    assert_metrics(mono["clear"], hand_metrics([10, 20, 40], [20, 20, 20]))  # median scaling: ratio 20/10
    stereo = run_eval(ckpt, "kitti_eigen_stereo", tmp_path / "stereo.json", [])
    assert_metrics(stereo["all"], hand_metrics([10, 20, 40], [54, 54, 54]))  # ×5.4
    gt = export_gt(root, tmp_path / "splits" / "eigen" / "test_files.txt", tmp_path / "gt.npz", progress=False)
    data = np.load(gt, allow_pickle=True)["data"]
    assert data.shape == (1, 375, 1242) and sorted(data[0][data[0] > 0].round(3)) == [10, 20, 40]


@needs_real
def test_eval_kitti_eigen_benchmark_reads_improved_gt_png(tmp_path: Path) -> None:
    root = kitti_root(tmp_path, frames=range(0, 1), right=False)
    gt_dir = root / DRIVE / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    gt = np.zeros((375, 1242), np.uint16)
    gt[10, 10], gt[200, 600], gt[370, 1200] = 5 * 256, 10 * 256, 100 * 256  # no crop, no 80 m cut on GT
    Image.fromarray(gt).save(gt_dir / "0000000000.png")
    write_split(tmp_path / "splits", "eigen_benchmark", "test_files.txt", [f"{DRIVE} 0 l"])
    overrides = ["data.dataset=kitti", f"data.root={root}", "data.num_workers=0",
                 f"data.options={{splits_dir: {tmp_path / 'splits'}, png: true, test_split: eigen_benchmark}}"]
    ckpt = constant_depth_checkpoint(tmp_path / "ck.pt", 10.0, overrides)
    res = run_eval(ckpt, "kitti_eigen_benchmark", tmp_path / "bench.json", [])
    assert_metrics(res["all"], hand_metrics([5, 10, 100], [10, 10, 10]))  # median 10: ratio 1
