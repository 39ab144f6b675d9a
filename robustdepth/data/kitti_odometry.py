"""KITTI odometry in its own layout: frames, GT poses, and LiDAR GT depth projected as Monodepth2 does.

Layout (the odometry archives unpacked under ``data.root``)::

    ROOT/sequences/04/image_2/000000.jpg …     left colour camera (.png as distributed; MD2 converts to .jpg)
    ROOT/sequences/04/velodyne/000000.bin …    N×4 float32 scans (x fwd, y left, z up, reflectance); may be sparse
    ROOT/sequences/04/calib.txt                P0..P3 (3×4, rectified), Tr (3×4 velodyne → rectified camera 0)
    ROOT/sequences/04/times.txt                one timestamp (s) per frame
    ROOT/poses/04.txt                          GT: one 3×4 camera-0-to-world pose per frame (row-major)

GT depth of a frame with a scan is Monodepth2's ``generate_depth_map`` (nianticlabs/monodepth2
``kitti_utils.py``, read, not copied) with the odometry calibration in place of the raw one: the
velodyne → image matrix is ``P2 · Tr`` (Tr already lands in the rectified camera-0 frame, so there is no
separate R_rect), the image size is that of the stored frame (odometry has no ``S_rect``); points with
velodyne x < 0 are dropped, pixel = round(u) − 1, out-of-image points are dropped and where several
points hit one pixel the nearest wins (:func:`robustdepth.data.kitti.project_velodyne`). Depth is the
camera-2 z by default (``generate_depth_map``'s default); ``data.options.vel_depth=true`` gives the
velodyne x instead, what MD2 exports as Eigen GT.

Poses are served as the sequence's camera (camera 0 moved by P_c's baseline) to world; pose evaluation
(:mod:`robustdepth.evaluation.pose`) uses the file's camera-0 poses as Monodepth2's ``evaluate_pose.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from robustdepth.data.registry import register_dataset
from robustdepth.data.base import DataError, FrameItem, FrameSequence, items_with_neighbours
from robustdepth.data.kitti import (
    load_velodyne_points,
    md2_intrinsics,
    project_velodyne,
    read_calib_file,
    scan_size_problem,
)

ODOMETRY_OPTIONS = ("sequences", "camera", "intrinsics", "vel_depth")
IMAGE_EXTENSIONS = (".jpg", ".png")


@dataclass(frozen=True)
class OdometryCalib:
    """``calib.txt`` of one sequence: the four rectified projections and velodyne → camera 0."""

    P: dict[int, np.ndarray]  # camera index → 3×4
    Tr: np.ndarray  # 4×4, velodyne → rectified camera 0

    def K(self, camera: int) -> np.ndarray:
        """3×3 intrinsics of ``camera`` in native pixels."""
        return self.P[camera][:, :3].copy()

    def camera_offset(self, camera: int) -> np.ndarray:
        """t with X_camera = X_cam0 + t (rectified cameras differ by a translation only): K⁻¹ · P[:, 3]."""
        return np.linalg.solve(self.K(camera), self.P[camera][:, 3])

    def velodyne_to_image(self, camera: int = 2) -> np.ndarray:
        """3×4 ``P_c · Tr``: homogeneous velodyne points → (u·z, v·z, z) in camera ``camera``."""
        return self.P[camera] @ self.Tr


def read_odometry_calib(path: Path) -> OdometryCalib:
    """Parse an odometry ``calib.txt`` (``P0:`` … ``P3:``, ``Tr:``, 12 numbers each); errors name the file."""
    values = read_calib_file(path)
    missing = [k for k in ("P0", "P1", "P2", "P3", "Tr") if k not in values or values[k].size != 12]
    if missing:
        raise DataError(f"{path} lacks {missing} with 12 numbers each (is it a KITTI odometry calib.txt?)")
    Tr = np.eye(4)
    Tr[:3] = values["Tr"].reshape(3, 4)
    return OdometryCalib({c: values[f"P{c}"].reshape(3, 4) for c in range(4)}, Tr)


def read_poses(path: Path) -> np.ndarray:
    """KITTI pose file (one row-major 3×4 camera-to-world per line) → N×4×4 float64."""
    if not path.is_file():
        raise DataError(f"KITTI pose file not found: {path}")
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataError(f"KITTI pose file {path} is not numeric: {err}") from None
    if rows.shape[1] != 12:
        raise DataError(f"KITTI pose file {path}: expected 12 numbers per line, got {rows.shape[1]}")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3] = rows.reshape(-1, 3, 4)
    return poses


def read_times(path: Path) -> np.ndarray:
    """``times.txt``: one timestamp in seconds per frame."""
    if not path.is_file():
        raise DataError(f"KITTI times file not found: {path}")
    return np.loadtxt(path, dtype=np.float64, ndmin=1)


class OdometrySequence(FrameSequence):
    """One camera of one odometry sequence; frame index = the 6-digit file number (frames must be 0..N−1)."""

    def __init__(self, root: Path, sequence: str, camera: int = 2, intrinsics: str = "calib",
                 vel_depth: bool = False) -> None:
        if camera not in (0, 1, 2, 3):
            raise DataError(f"KITTI odometry camera {camera}: use 0-3 (2 = left colour)")
        if intrinsics not in ("calib", "md2"):
            raise DataError(f"data.options.intrinsics={intrinsics!r}: use calib (P_c) or md2 (0.58/1.92)")
        self.root, self.sequence, self.camera = root, sequence, camera
        self.intrinsics_mode, self.vel_depth = intrinsics, vel_depth
        self.folder = root / "sequences" / sequence
        self.image_dir = self.folder / f"image_{camera}"
        self.name = f"odometry/{sequence}/image_{camera}"

    @cached_property
    def frames(self) -> list[Path]:
        """The stored frames in index order (one extension; mixed .jpg/.png folders are refused)."""
        if not self.image_dir.is_dir():
            raise DataError(f"KITTI odometry frames not found: {self.image_dir}")
        paths = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise DataError(f"no .jpg/.png frames in {self.image_dir}")
        if len({p.suffix.lower() for p in paths}) > 1:
            raise DataError(f"{self.image_dir} mixes .jpg and .png frames; keep one format")
        expected = [f"{i:06d}" for i in range(len(paths))]
        gaps = [p.name for p, want in zip(paths, expected) if p.stem != want]
        if gaps:
            raise DataError(f"{self.image_dir}: frames must be numbered 000000..{len(paths) - 1:06d} without gaps; "
                            f"first unexpected: {gaps[0]}")
        return paths

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def image_path(self, index: int, condition: str) -> Path:
        if condition != "clear":
            raise DataError(f"KITTI odometry has only the clear condition, not {condition!r}")
        return self.image_dir / f"{index:06d}{self.frames[0].suffix}"

    @cached_property
    def calib(self) -> OdometryCalib:
        return read_odometry_calib(self.folder / "calib.txt")

    @cached_property
    def native_size(self) -> tuple[int, int]:
        """(W, H) of the stored frames (from the first frame's header)."""
        with Image.open(self.frames[0]) as img:
            return img.size

    @cached_property
    def _K(self) -> np.ndarray:
        if self.intrinsics_mode == "calib":
            return self.calib.K(self.camera).astype(np.float32)
        return md2_intrinsics(*self.native_size)

    def intrinsics(self) -> np.ndarray:
        return self._K

    def velodyne_path(self, index: int) -> Path:
        return self.folder / "velodyne" / f"{index:06d}.bin"

    def scan_indices(self) -> list[int]:
        """Frames that have a velodyne scan (the evaluation frames)."""
        return [i for i in range(self.num_frames) if self.velodyne_path(i).is_file()]

    def depth_gt(self, index: int, condition: str) -> np.ndarray | None:
        """LiDAR GT of frame ``index`` at the native size (0 = no point), or None without a scan."""
        path = self.velodyne_path(index)
        if not path.is_file():
            return None
        width, height = self.native_size
        return project_velodyne(load_velodyne_points(path), self.calib.velodyne_to_image(self.camera),
                                (height, width), vel_depth=self.vel_depth)

    @cached_property
    def gt_poses(self) -> np.ndarray | None:
        """The pose file's camera-0-to-world poses (N×4×4), or None when ``poses/NN.txt`` is absent."""
        path = self.root / "poses" / f"{self.sequence}.txt"
        return read_poses(path) if path.is_file() else None

    def pose(self, index: int) -> np.ndarray | None:
        """Camera-to-world pose of this camera: the camera-0 pose moved by the rectified baseline."""
        poses = self.gt_poses
        if poses is None or index >= len(poses):
            return None
        cam_to_cam0 = np.eye(4)
        cam_to_cam0[:3, 3] = -self.calib.camera_offset(self.camera)
        return poses[index] @ cam_to_cam0


def odometry_sequence_ids(root: Path, wanted: Sequence[str] | None = None) -> list[str]:
    """Sequence folder names under ``root/sequences`` (all, or ``wanted`` given as 4 or "04")."""
    base = root / "sequences"
    if not base.is_dir():
        raise DataError(f"{base} not found (expected the KITTI odometry root holding sequences/ and poses/)")
    if wanted:
        ids = [f"{int(s):02d}" if str(s).isdigit() else str(s) for s in wanted]
        absent = [s for s in ids if not (base / s).is_dir()]
        if absent:
            raise DataError(f"KITTI odometry sequence(s) {absent} not under {base}")
        return ids
    ids = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not ids:
        raise DataError(f"no sequences under {base}")
    return ids


def odometry_sequences(root: Path, options: dict[str, Any]) -> list[OdometrySequence]:
    """The configured sequences of an odometry root (``data.options``: sequences, camera, intrinsics, vel_depth)."""
    wanted = options.get("sequences")
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    return [OdometrySequence(root, s, int(options.get("camera", 2)), str(options.get("intrinsics", "calib")),
                             bool(options.get("vel_depth", False)))
            for s in odometry_sequence_ids(root, wanted)]


@register_dataset("kitti_odometry", options=ODOMETRY_OPTIONS)
def _odometry_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    """Training: every frame with its neighbours; evaluation: every frame with a velodyne scan.

    Every split name reads the same sequences (point ``data.options.sequences`` at different ones to hold
    some out), as the folder dataset does.
    """
    sequences = odometry_sequences(Path(data.root), dict(data.options))
    if train:
        return items_with_neighbours(sequences, frame_ids, ["clear"])
    conditions = list(data.eval_conditions) or ["clear"]
    if conditions != ["clear"]:
        raise DataError(f"data.eval_conditions {conditions}: KITTI odometry has only 'clear'")
    items = [FrameItem(seq, i, "clear") for seq in sequences for i in seq.scan_indices()]
    if not items:
        raise DataError(f"no velodyne scans under {Path(data.root) / 'sequences'}/*/velodyne: nothing to evaluate")
    return items


# ------------------------------------------------------------------------------------------ check


def check_kitti_odometry(root: Path, sequences: Sequence[str] | None = None) -> Any:
    """``robustdepth data check ROOT --dataset kitti_odometry``: frames, calibration, times, poses, scans."""
    from robustdepth.data.cli import Report

    report = Report()
    try:
        ids = odometry_sequence_ids(root, sequences)
    except DataError as err:
        report.missing(str(err), [root / "sequences"], 1)
        return report
    for sid in ids:
        seq = OdometrySequence(root, sid)
        try:
            frames = seq.frames
        except DataError as err:
            report.missing(f"sequence {sid} frames ({err})", [seq.image_dir], 1)
            continue
        width, height = seq.native_size
        report.ok(f"sequence {sid}: {len(frames)} frames ({frames[0].suffix}) {width}x{height} in {seq.image_dir}")
        calib_path = seq.folder / "calib.txt"
        try:
            K = seq.calib.K(2)
            report.ok(f"sequence {sid}: calib.txt P2 fx={K[0, 0]:.1f} fy={K[1, 1]:.1f} cx={K[0, 2]:.1f} "
                      f"cy={K[1, 2]:.1f} (used; data.options.intrinsics=md2 for MD2's 0.58/1.92), Tr present")
        except DataError as err:
            report.missing(f"sequence {sid} calibration ({err})", [calib_path], 1)
        _check_count(report, f"sequence {sid} times.txt", seq.folder / "times.txt", read_times, len(frames))
        _check_count(report, f"poses/{sid}.txt (GT poses, for eval-pose)", root / "poses" / f"{sid}.txt",
                     read_poses, len(frames), required=False)
        scans = sorted((seq.folder / "velodyne").glob("*.bin"))
        if not scans:
            report.warn(f"sequence {sid}: no velodyne scans (no depth GT; training and eval-pose still work)")
            continue
        bad = [p for p in scans if scan_size_problem(p)]
        report.missing(f"sequence {sid} velodyne scans with a valid size (N×4 float32)", bad, len(scans))
        report.ok(f"sequence {sid}: {len(scans)} scans -> depth GT for frames {scans[0].stem}..{scans[-1].stem}")
    return report


def _check_count(report: Any, what: str, path: Path, reader: Any, expected: int, required: bool = True) -> None:
    """One line per text file: present, readable and one row per frame."""
    if not path.is_file():
        if required:
            report.missing(what, [path], 1)
        else:
            report.warn(f"{what}: {path} absent")
        return
    try:
        rows = len(reader(path))
    except DataError as err:
        report.missing(f"{what} ({err})", [path], 1)
        return
    if rows != expected:
        report.missing(f"{what}: {rows} lines for {expected} frames", [path], 1)
    else:
        report.ok(f"{what}: {rows} lines, one per frame")


__all__ = [
    "OdometryCalib",
    "OdometrySequence",
    "check_kitti_odometry",
    "odometry_sequences",
    "read_odometry_calib",
    "read_poses",
    "read_times",
]
