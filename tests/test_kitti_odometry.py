"""Real KITTI video: the odometry layout (calibration, GT poses, LiDAR GT checked against an independent
projection of the real scans), whole raw drives, mixed sources, and `data check` / `export-gt` on real and
constructed trees. Real files are read in place from ../shared/realdata; those tests skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.cli import main
from robustdepth.configure import apply_overrides, load_config
from robustdepth.data import build_dataset, build_items
from robustdepth.data.base import DataError, color_key, translation_key
from robustdepth.data.drives import source_config
from robustdepth.data.kitti import export_gt, load_gt_depths, load_velodyne_points
from robustdepth.data.kitti_odometry import OdometrySequence, read_odometry_calib, read_poses
from tests.test_datasets_kitti import CALIB, DRIVE, REAL, kitti_root, needs_real, write_split

ODOM = REAL / "kitti_odometry_04_lidar"
SEQ = ODOM / "sequences" / "04"
RAW = REAL / "kitti_raw_2011_09_26_drive_0095"
DEMO = REAL / "kitti_raw_seq_demo_slam" / "input"
needs_odometry = pytest.mark.skipif(not (SEQ / "velodyne").is_dir(),
                                    reason="../shared/realdata/kitti_odometry_04_lidar not present")
needs_drive = pytest.mark.skipif(not RAW.is_dir() or not DEMO.is_dir(),
                                 reason="../shared/realdata KITTI raw drive 0095 / demo_slam frames not present")


def independent_lidar_depth(scan: np.ndarray, calib_path: Path, height: int, width: int) -> np.ndarray:
    """Monodepth2's rules written out point by point: velodyne → camera 0 with Tr (rotation, then
    translation), camera 0 → image 2 with P2's rows; keep velodyne x ≥ 0; pixel = round(u) − 1 inside the
    image; the nearest camera-2 depth of the points in a pixel wins."""
    values = {}
    for line in calib_path.read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = np.array(rest.split(), dtype=np.float64)
    Tr, P2 = values["Tr"].reshape(3, 4), values["P2"].reshape(3, 4)
    xyz = scan[:, :3].astype(np.float64)
    front = xyz[:, 0] >= 0
    cam0 = xyz[front] @ Tr[:, :3].T + Tr[:, 3]
    z = cam0 @ P2[2, :3] + P2[2, 3]
    u = (cam0 @ P2[0, :3] + P2[0, 3]) / z
    v = (cam0 @ P2[1, :3] + P2[1, 3]) / z
    col, row = np.round(u) - 1, np.round(v) - 1
    inside = (col >= 0) & (row >= 0) & (col < width) & (row < height)
    best: dict[tuple[int, int], float] = {}
    for r, c, d in zip(row[inside].astype(int), col[inside].astype(int), z[inside]):
        best[(r, c)] = min(d, best.get((r, c), np.inf))
    depth = np.zeros((height, width))
    for (r, c), d in best.items():
        depth[r, c] = d
    return np.maximum(depth, 0)


# ----------------------------------------------------------------------------------------- real odometry


@needs_odometry
def test_real_odometry_calibration_poses_and_times() -> None:
    calib = read_odometry_calib(SEQ / "calib.txt")
    assert calib.K(2)[[0, 0, 1], [0, 2, 2]] == pytest.approx([707.0912, 601.8873, 183.1104])
    assert calib.Tr.shape == (4, 4) and calib.Tr[3].tolist() == [0, 0, 0, 1]
    assert np.linalg.det(calib.Tr[:3, :3]) == pytest.approx(1.0, abs=1e-6)  # a rotation
    # camera 2 sits ~6 cm beside camera 0: P2[:, 3] = K·t, so t_z = P2[2, 3], t_x = (P2[0, 3] − cx·t_z) / fx
    t_z = 6.203223e-03
    assert calib.camera_offset(2) == pytest.approx([(46.88783 - 601.8873 * t_z) / 707.0912,
                                                    (0.1178601 - 183.1104 * t_z) / 707.0912, t_z], rel=1e-9)
    poses = read_poses(ODOM / "poses" / "04.txt")
    assert poses.shape == (51, 4, 4) and np.allclose(poses[0], np.eye(4), atol=1e-9)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert steps.min() > 1.30 and steps.max() < 1.44  # 13.3 m/s at 10 Hz (SOURCE.txt: 1.31-1.43 m)


@needs_odometry
@pytest.mark.parametrize("frame", [0, 25, 50])
def test_real_lidar_gt_equals_independent_projection(frame: int) -> None:
    seq = OdometrySequence(ODOM, "04")
    depth = seq.depth_gt(frame, "clear")
    width, height = seq.native_size
    assert depth.shape == (height, width) == (370, 1226)
    scan = np.fromfile(SEQ / "velodyne" / f"{frame:06d}.bin", dtype=np.float32).reshape(-1, 4)
    expected = independent_lidar_depth(scan, SEQ / "calib.txt", height, width)
    # MD2's duplicate search (sub2ind with W−1) merges pixel (r, W−1) with (r+1, 0): compare those two
    # columns only where they hold one point; everywhere else the maps must agree exactly (float32 rounding).
    inner = np.s_[:, 1:-1]
    np.testing.assert_allclose(depth[inner], expected[inner], rtol=1e-6, atol=1e-5)
    assert np.count_nonzero(depth) > 19000  # SOURCE.txt: ~20k points land in the image
    valid = depth[depth > 0]
    assert 4.9 < valid.min() < 6.0 and 78.0 < valid.max() < 79.1
    assert np.nonzero(depth)[0].min() > 100  # nothing above the LiDAR's top beam


@needs_odometry
def test_real_scan_counts_and_velodyne_x_option() -> None:
    scan = load_velodyne_points(SEQ / "velodyne" / "000000.bin")
    calib = read_odometry_calib(SEQ / "calib.txt")
    z = (scan @ calib.velodyne_to_image(2).T)[:, 2]
    assert len(scan) == 124231 and int((z > 0).sum()) == 61970  # SOURCE.txt's counts for scan 000000
    cam_z = OdometrySequence(ODOM, "04").depth_gt(0, "clear")
    vel_x = OdometrySequence(ODOM, "04", vel_depth=True).depth_gt(0, "clear")
    both = (cam_z > 0) & (vel_x > 0)
    assert np.array_equal(cam_z > 0, vel_x > 0)
    # camera-2 z = velodyne x − the ~0.27 m the cameras sit ahead of it (+ a small tilt term)
    assert np.median(vel_x[both] - cam_z[both]) == pytest.approx(0.27, abs=0.05)


@needs_odometry
def test_real_odometry_dataset_items_k_poses_and_translation() -> None:
    cfg = load_config("monodepth2", ["data.dataset=kitti_odometry", f"data.root={ODOM}", "data.options.sequences=[4]",
                                     "augment.flip_p=0.0", "augment.color_jitter_p=0.0"])
    train = build_dataset(cfg, "train", train=True)
    assert len(train) == 49  # frames 1..49 have both neighbours
    sample = train[0]
    assert torch.allclose(sample["K"], torch.tensor([[707.0912 * 320 / 1226, 0, 601.8873 * 320 / 1226],
                                                     [0, 707.0912 * 96 / 370, 183.1104 * 96 / 370], [0, 0, 1]]))
    assert 1.30 < float(sample[translation_key(1)]) < 1.44
    test = build_dataset(cfg, "test", train=False)
    assert [it.index for it in test.items] == list(range(0, 51, 5))
    assert test[0]["depth_gt"].shape == (1, 370, 1226)
    seq = test.items[0].sequence
    offset = read_odometry_calib(SEQ / "calib.txt").camera_offset(2)
    # camera 2's centre in world = camera 0's pose applied to (−offset): X_cam2 = X_cam0 + offset
    expected = seq.gt_poses[7] @ np.append(-offset, 1.0)
    assert np.allclose(seq.pose(7)[:3, 3], expected[:3])
    assert np.allclose(seq.pose(7)[:3, :3], seq.gt_poses[7][:3, :3])
    md2 = apply_overrides(cfg, ["data.options.intrinsics=md2"])
    assert build_dataset(md2, "train", True)[0]["K"][0, 0] == pytest.approx(0.58 * 320)


@needs_odometry
@needs_drive
def test_data_check_passes_on_both_real_layouts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(RAW), "--dataset", "kitti"]) == 0
    out = capsys.readouterr().out
    assert "268 consecutive .jpg frames, 1242x375" in out and "P_rect_02 fx=721.5" in out
    assert main(["data", "check", str(ODOM), "--dataset", "kitti_odometry"]) == 0
    out = capsys.readouterr().out
    assert "51 frames (.jpg) 1226x370" in out and "11 scans" in out and "poses/04.txt" in out


# ----------------------------------------------------------------------------------------- raw drives, mixed


@needs_drive
def test_whole_drives_and_mixed_sources_train_on_the_real_frames() -> None:
    cfg = load_config("kitti_real_monodepth2", ["augment.flip_p=0.0", "augment.color_jitter_p=0.0"])
    items = build_items(cfg, "train", train=True)
    names = [it.sequence.name for it in items]
    assert names.count("2011_09_26/2011_09_26_drive_0095_sync/image_02") == 266 and names.count("input") == 58
    ds = build_dataset(cfg, "train", train=True)
    k_drive, k_demo = ds[0]["K"], ds[len(ds) - 1]["K"]
    # both sources use the 2011_09_26 P_rect_02 (1242x375 → 320x96)
    expected = torch.tensor([[721.5377 * 320 / 1242, 0, 609.5593 * 320 / 1242],
                             [0, 721.5377 * 96 / 375, 172.854 * 96 / 375], [0, 0, 1]])
    assert torch.allclose(k_drive, expected) and torch.allclose(k_demo, expected)
    first = Image.open(RAW / "2011_09_26/2011_09_26_drive_0095_sync/image_02/data/0000000000.jpg").convert("RGB")
    want = torch.from_numpy(np.asarray(first.resize((320, 96), Image.Resampling.LANCZOS), np.float32) / 255)
    assert torch.allclose(ds[0][color_key(-1)], want.permute(2, 0, 1))
    md2 = apply_overrides(cfg, ["data.options.sources=[{dataset: kitti_drives, root: "
                                "kitti_raw_2011_09_26_drive_0095, options: {intrinsics: md2}}]"])
    assert build_dataset(md2, "train", True)[0]["K"][0, 0] == pytest.approx(0.58 * 320)


def test_mixed_sources_are_validated(tmp_path: Path) -> None:
    cfg = load_config("monodepth2", ["data.dataset=mixed", f"data.root={tmp_path}"])
    with pytest.raises(DataError, match="needs data.options.sources"):
        build_items(cfg, "train", True)
    with pytest.raises(DataError, match=r"sources\[0\] keys \['height'\] unknown"):
        source_config(cfg.data, {"dataset": "folder", "root": "x", "height": 3}, 0)
    with pytest.raises(DataError, match="cannot hold another mixed"):
        source_config(cfg.data, {"dataset": "mixed", "root": "x"}, 0)
    block = source_config(cfg.data, {"dataset": "folder", "root": "a/b", "intrinsics": [1, 1, 1, 1]}, 0)
    assert block.root == str(tmp_path / "a/b") and block.dataset == "folder" and list(block.intrinsics) == [1, 1, 1, 1]
    bad = apply_overrides(cfg, ["data.options.sources=[{dataset: kitti_drives, root: r, options: {bogus: 1}}]"])
    with pytest.raises(DataError, match=r"\['bogus'\] not understood by dataset 'kitti_drives'"):
        build_items(bad, "train", True)


def test_switching_dataset_drops_the_stored_datasets_options() -> None:
    cfg = load_config("kitti_real_monodepth2")
    moved = apply_overrides(cfg, ["data.dataset=kitti_odometry", "data.root=x"])
    assert dict(moved.data.options) == {}
    kept = apply_overrides(cfg, ["data.dataset=kitti_odometry", "data.options.sequences=[4]"])
    assert dict(kept.data.options) == {"sequences": [4]}
    same = apply_overrides(cfg, ["data.dataset=mixed", "data.height=64"])
    assert "sources" in same.data.options


# ----------------------------------------------------------------------------------------- constructed trees


def odometry_root(tmp: Path, frames: int = 4, scans: dict[int, np.ndarray] | None = None) -> Path:
    """A small odometry tree: the real seq-04 calibration text, grey PNG frames, poses 1 m apart."""
    seq = tmp / "odom" / "sequences" / "00"
    (seq / "image_2").mkdir(parents=True)
    (seq / "velodyne").mkdir()
    calib = ("P0: 100 0 60 0 0 100 20 0 0 0 1 0\nP1: 100 0 60 -50 0 100 20 0 0 0 1 0\n"
             "P2: 100 0 60 6 0 100 20 0 0 0 1 0\nP3: 100 0 60 -44 0 100 20 0 0 0 1 0\n"
             "Tr: 0 -1 0 0 0 0 -1 0 1 0 0 0\n")
    (seq / "calib.txt").write_text(calib)
    (seq / "times.txt").write_text("".join(f"{0.1 * i:.6e}\n" for i in range(frames)))
    (tmp / "odom" / "poses").mkdir()
    (tmp / "odom" / "poses" / "00.txt").write_text("".join(f"1 0 0 0 0 1 0 0 0 0 1 {i}.0\n" for i in range(frames)))
    for i in range(frames):
        Image.fromarray(np.full((40, 120, 3), 20 * i, np.uint8)).save(seq / "image_2" / f"{i:06d}.png")
    for i, scan in (scans or {}).items():
        scan.astype(np.float32).tofile(seq / "velodyne" / f"{i:06d}.bin")
    return tmp / "odom"


def test_constructed_odometry_gt_lands_on_hand_computed_pixels(tmp_path: Path) -> None:
    """Tr maps velodyne (x fwd, y left, z up) to camera (x right, y down, z fwd); P2 = K [I | (0.06, 0, 0)]."""
    scan = np.array([[10, 0, 0, 0.5],     # z = 10: u = 60 + 6/10 = 60.6 → col 60, v = 20 → row 19
                     [5, 0, 0, 0.5],      # u = 61.2 → col 60, same pixel, nearer: wins
                     [20, -2, -1, 0.5],   # x_cam = 2, y_cam = 1: u = 60 + 100·2.06/20 = 70.3 → 69, v = 25 → 24
                     [-4, 0, 0, 0.5]])    # behind: dropped
    root = odometry_root(tmp_path, scans={0: scan})
    depth = OdometrySequence(root, "00").depth_gt(0, "clear")
    assert depth.shape == (40, 120)
    assert depth[19, 60] == pytest.approx(5.0) and depth[24, 69] == pytest.approx(20.0)
    assert np.count_nonzero(depth) == 2
    assert OdometrySequence(root, "00").depth_gt(1, "clear") is None  # no scan: no GT
    assert main(["data", "check", str(root), "--dataset", "kitti_odometry"]) == 0


def test_check_flags_truncated_scans_and_loading_refuses_them(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    scan = np.tile(np.array([[10, 0, 0, 0.5]], np.float32), (8, 1))
    root = odometry_root(tmp_path, scans={0: scan, 2: scan})
    path = root / "sequences" / "00" / "velodyne" / "000002.bin"
    path.write_bytes(path.read_bytes()[:-6])  # cut mid-point, as an interrupted copy does
    assert main(["data", "check", str(root), "--dataset", "kitti_odometry"]) == 1
    out = capsys.readouterr().out
    assert "MISSING  sequence 00 velodyne scans with a valid size" in out and "000002.bin" in out
    with pytest.raises(DataError, match="not whole 16-byte points"):
        load_velodyne_points(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_velodyne_points(path)


def test_check_flags_pose_and_times_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = odometry_root(tmp_path)
    (root / "sequences" / "00" / "times.txt").write_text("0\n0.1\n")
    assert main(["data", "check", str(root), "--dataset", "kitti_odometry"]) == 1
    assert "times.txt: 2 lines for 4 frames" in capsys.readouterr().out


@needs_real
def test_raw_check_flags_truncated_eigen_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = kitti_root(tmp_path, frames=range(0, 2), right=False)
    velo = root / DRIVE / "velodyne_points" / "data"
    velo.mkdir(parents=True)
    np.zeros((5, 4), np.float32).tofile(velo / "0000000000.bin")
    (velo / "0000000001.bin").write_bytes(np.zeros((5, 4), np.float32).tobytes()[:-4])
    write_split(tmp_path / "splits", "eigen", "test_files.txt", [f"{DRIVE} 0 l", f"{DRIVE} 1 l"])
    assert main(["data", "check", str(root), "--dataset", "kitti", "--splits-dir", str(tmp_path / "splits"),
                 "--split", "eigen"]) == 1
    out = capsys.readouterr().out
    assert "velodyne scans with a valid size (N×4 float32): 1 of 2" in out and "0000000001.bin" in out


@needs_real
def test_check_of_evaluation_only_root_needs_no_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = kitti_root(tmp_path, frames=range(0, 1), right=False)
    velo = root / DRIVE / "velodyne_points" / "data"
    velo.mkdir(parents=True)
    np.zeros((5, 4), np.float32).tofile(velo / "0000000000.bin")
    splits = tmp_path / "splits"
    write_split(splits, "eigen", "test_files.txt", [f"{DRIVE} 0 l"])
    write_split(splits, "eigen_zhou", "train_files.txt", ["2011_09_26/2011_09_26_drive_0002_sync 5 l"])
    assert main(["data", "check", str(root), "--dataset", "kitti", "--splits-dir", str(splits)]) == 0
    out = capsys.readouterr().out
    assert "none of its 1 images on disk, skipped (--split eigen_zhou to require it)" in out
    assert "split folder eigen_benchmark: absent, skipped" in out
    assert main(["data", "check", str(root), "--dataset", "kitti", "--splits-dir", str(splits),
                 "--split", "eigen_zhou"]) == 1


@needs_real
def test_export_gt_refuses_silent_overwrite_and_mixed_sizes_load_without_pickle(tmp_path: Path) -> None:
    root = kitti_root(tmp_path, frames=range(0, 1), right=False)
    # a second recording day with another rectified size (S_rect_02 600x200), as the real Eigen split mixes
    other = root / "2011_09_28"
    other.mkdir()
    cam = (CALIB / "calib_cam_to_cam.txt").read_text()
    lines = [("S_rect_02: 6.000000e+02 2.000000e+02" if ln.startswith("S_rect_02:") else ln) for ln in cam.splitlines()]
    (other / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    (other / "calib_velo_to_cam.txt").symlink_to(CALIB / "calib_velo_to_cam.txt")
    scan = np.array([[10, 0, -1.0, 0.5], [20, 2, -1.5, 0.5]], np.float32)
    drives = [DRIVE, "2011_09_28/2011_09_28_drive_0001_sync"]
    for drive in drives:
        (root / drive / "velodyne_points" / "data").mkdir(parents=True)
        scan.tofile(root / drive / "velodyne_points" / "data" / "0000000000.bin")
    write_split(tmp_path / "splits", "eigen", "test_files.txt", [f"{d} 0 l" for d in drives])
    split_file = tmp_path / "splits" / "eigen" / "test_files.txt"
    out = export_gt(root, split_file, tmp_path / "gt.npz", progress=False)
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["depths", "shapes"] and npz["shapes"].tolist() == [[375, 1242], [200, 600]]
    depths = load_gt_depths(out)
    assert [d.shape for d in depths] == [(375, 1242), (200, 600)]
    assert sorted(depths[0][depths[0] > 0].round(3)) == [10, 20]
    with pytest.raises(DataError, match="exists; pass --overwrite"):
        export_gt(root, split_file, out, progress=False)
    args = ["data", "export-gt", "kitti", str(root), "--splits-dir", str(tmp_path / "splits"), "--out", str(out)]
    assert main(args) == 2
    assert main([*args, "--overwrite"]) == 0


def test_load_gt_depths_reads_md2_uniform_form(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.savez_compressed(tmp_path / "gt.npz", data=data)
    assert np.array_equal(np.stack(load_gt_depths(tmp_path / "gt.npz")), data)
    np.savez_compressed(tmp_path / "bad.npz", depths=np.zeros(5, np.float32), shapes=np.array([[2, 2]]))
    with pytest.raises(DataError, match="shapes cover 4 values, depths hold 5"):
        load_gt_depths(tmp_path / "bad.npz")


def test_whole_drive_requires_consecutive_frames(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data"
    folder.mkdir(parents=True)
    for i in (0, 1, 3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{i:010d}.png")
    cfg = load_config("monodepth2", ["data.dataset=kitti_drives", f"data.root={tmp_path / 'raw'}"])
    with pytest.raises(DataError, match=r"without gaps; 1 missing, first 0000000002\.png"):
        build_items(cfg, "train", True)



def test_real_recipes_share_data_and_differ_only_in_initialisation() -> None:
    real, tuned = load_config("kitti_real_monodepth2"), load_config("kitti_real_finetune")
    assert (real.data.height, real.data.width) == (96, 320) and real.model.init_checkpoint is None
    assert str(tuned.model.init_checkpoint).endswith("checkpoints/last.pt")
    assert tuned.data == real.data and tuned.optim == real.optim and tuned.losses == real.losses


@needs_real
def test_check_without_any_split_on_disk_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = kitti_root(tmp_path, frames=range(0, 1), right=False)
    write_split(tmp_path / "splits", "eigen", "test_files.txt", ["2011_09_26/2011_09_26_drive_0002_sync 69 l"])
    assert main(["data", "check", str(root), "--dataset", "kitti", "--splits-dir", str(tmp_path / "splits")]) == 1
    assert "MISSING  images of any split" in capsys.readouterr().out
