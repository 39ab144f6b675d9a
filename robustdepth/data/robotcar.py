"""Oxford RobotCar in md4all's / RNW's layout: day 2014-12-09-13-21-02, night 2014-12-16-18-44-24.

Layout (``data.root``)::

    ROOT/models/stereo_wide_left.txt …            SDK camera models (fx fy cx cy, then G_camera_image 4×4)
    ROOT/extrinsics/stereo.txt lms_front.txt      SDK extrinsics (x y z roll pitch yaw), for robotcar-gt
    ROOT/<run>/stereo/left/<unix_us>.png          demosaiced + undistorted RGB, 1280×960
    ROOT/<run>/lms_front/<unix_us>.bin            raw front 2D laser scans (float64 x, y, reflectance)
    ROOT/<run>/lms_front.timestamps               "<unix_us> <chunk>" per scan
    ROOT/<run>/vo/vo.csv                          visual odometry (relative poses)
    ROOT/<run>/lms_front_synchronized/vo/time_margin=+-4.0e+06/<unix_us>.pcd.bin   GT clouds (robotcar-gt)
    SPLITS/<run>/{train,test}_split.txt           RNW/STEPS: "<unix_us> 1" per line, '#' = commented out
    or SPLITS/<run>_{train_stride_1,val_stride_1,test}.txt   md4all: "prev cur next" / "cur" per line

Facts (md4all ``data/robotcar/robotcar_dataset.py`` and ``precompute_depth_gt.py``, the SDK's
``camera_model.py``/``build_pointcloud.py``/``transform.py``; read, not copied): the camera model of
``stereo/left`` is ``stereo_wide_left`` (``stereo/centre`` → ``stereo_narrow_left``); images are cropped
to the top 768×1280 (drops the bonnet) before resizing to 320×544, K and GT cropped alike; GT = laser
scans within ±4 s accumulated with VO poses into the camera frame at the image time, projected with the
SDK model (points with z >= 0, 0.5 <= u <= W−1, 0.5 <= v <= H−1, rounded, nearest wins).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from robustdepth.data.registry import register_dataset
from robustdepth.data.base import DataError, FrameItem, FrameSequence, read_rgb
from robustdepth.data.nuscenes import resolve_conditions

RUNS = {"2014-12-09-13-21-02": "day", "2014-12-16-18-44-24": "night"}
CAMERA_MODELS = {"stereo/left": "stereo_wide_left", "stereo/right": "stereo_wide_right",
                 "stereo/centre": "stereo_narrow_left"}
CROP = (0, 0, 768, 1280)  # top, left, height, width (md4all DATASET.AUGMENTATION.CROP)
GT_SUBDIR = "lms_front_synchronized/vo/time_margin=+-4.0e+06"
TIME_MARGIN_US = 4_000_000
ROBOTCAR_OPTIONS = ("splits_dir", "camera", "models_dir", "crop", "daytime_norm", "runs")


# ------------------------------------------------------------------------------------------ SDK models


def read_camera_model(models_dir: Path, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """(K 3×3 at 1280×960, G_camera_image 4×4) of an SDK camera model file."""
    if camera not in CAMERA_MODELS:
        raise DataError(f"RobotCar camera {camera!r} unknown; valid: {sorted(CAMERA_MODELS)}")
    path = models_dir / f"{CAMERA_MODELS[camera]}.txt"
    if not path.is_file():
        raise DataError(f"RobotCar camera model not found: {path} (the SDK's models/ folder)")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        fx, fy, cx, cy = (float(v) for v in rows[0])
        G = np.array([[float(v) for v in row] for row in rows[1:5]], dtype=np.float64)
    except (ValueError, IndexError):
        raise DataError(f"{path}: expected 'fx fy cx cy' then a 4×4 G_camera_image") from None
    if G.shape != (4, 4):
        raise DataError(f"{path}: G_camera_image must be 4×4, got {G.shape}")
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64), G


def se3_from_xyzrpy(values: Sequence[float]) -> np.ndarray:
    """SDK build_se3_transform: translation x y z, rotation Rz(yaw)·Ry(pitch)·Rx(roll)."""
    x, y, z, roll, pitch, yaw = values
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


def read_extrinsics(extrinsics_dir: Path, name: str) -> np.ndarray:
    path = extrinsics_dir / f"{name}.txt"
    if not path.is_file():
        raise DataError(f"RobotCar extrinsics not found: {path}")
    values = [float(v) for v in path.read_text().split()]
    if len(values) != 6:
        raise DataError(f"{path}: expected 'x y z roll pitch yaw', got {len(values)} numbers")
    return se3_from_xyzrpy(values)


def project_camera_points(points: np.ndarray, K: np.ndarray, G_camera_image: np.ndarray,
                          shape: tuple[int, int]) -> np.ndarray:
    """Sparse depth (H×W) of 3×N points in the SDK camera frame, as md4all (SDK project + nearest wins)."""
    height, width = shape
    xyzw = np.linalg.solve(G_camera_image, np.vstack([points[:3], np.ones((1, points.shape[1]))]))
    xyzw = xyzw[:, xyzw[2] >= 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * xyzw[0] / xyzw[2] + K[0, 2]
        v = K[1, 1] * xyzw[1] / xyzw[2] + K[1, 2]
    # md4all passes image_size (H−1, W−1): 0.5 <= u <= W−1, 0.5 <= v <= H−1.
    keep = (u >= 0.5) & (u <= width - 1) & (v >= 0.5) & (v <= height - 1)
    u, v, z = np.round(u[keep]).astype(np.int64), np.round(v[keep]).astype(np.int64), xyzw[2, keep]
    depth = np.full((height, width), np.inf)
    np.minimum.at(depth, (v, u), z)
    depth[~np.isfinite(depth)] = 0
    return depth.astype(np.float32)


# ------------------------------------------------------------------------------------------ sequences


class RobotCarSequence(FrameSequence):
    """One run's camera folder; frames ordered by timestamp, cropped to md4all's 768×1280."""

    def __init__(self, root: Path, run: str, camera: str, models_dir: Path,
                 crop: tuple[int, int, int, int] = CROP) -> None:
        self.root, self.run, self.camera, self.crop = root, run, camera, crop
        self.name = f"{run}/{camera}"
        self.folder = root / run / camera
        self.models_dir = models_dir

    @cached_property
    def timestamps(self) -> list[str]:
        if not self.folder.is_dir():
            raise DataError(f"RobotCar image folder not found: {self.folder}")
        return sorted((p.stem for p in self.folder.glob("*.png")), key=int)

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {ts: i for i, ts in enumerate(self.timestamps)}

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    def image_path(self, index: int, condition: str) -> Path:
        return self.folder / f"{self.timestamps[index]}.png"

    def load_image(self, index: int, condition: str) -> Image.Image:
        path = self.image_path(index, condition)
        return self.crop_image(read_rgb(path), path)

    def crop_image(self, img: Image.Image, path: Path) -> Image.Image:
        """md4all's crop (top 768×1280) of a frame — or of its md4all-style translated copy (degrade supply)."""
        top, left, height, width = self.crop
        if img.height < top + height or img.width < left + width:
            raise DataError(f"{path} is {img.width}×{img.height}, smaller than the crop {width}×{height} at "
                            f"({left}, {top})")
        return img.crop((left, top, left + width, top + height))

    @cached_property
    def _model(self) -> tuple[np.ndarray, np.ndarray]:
        return read_camera_model(self.models_dir, self.camera)

    def intrinsics(self) -> np.ndarray:
        K = self._model[0].copy()
        K[0, 2] -= self.crop[1]
        K[1, 2] -= self.crop[0]
        return K.astype(np.float32)

    @cached_property
    def _vo(self) -> tuple[np.ndarray, np.ndarray, Slerp] | None:
        """(VO timestamps, absolute poses, rotation interpolator), or None when the run has no vo/vo.csv."""
        path = self.root / self.run / "vo" / "vo.csv"
        if not path.is_file():
            return None
        stamps, poses = read_vo_poses(path)
        return stamps, poses, Slerp(stamps.astype(np.float64), Rotation.from_matrix(poses[:, :3, :3]))

    def pose(self, index: int) -> np.ndarray | None:
        """4×4 pose of the frame in the run's VO frame, interpolated at the image timestamp (linear translation,
        SLERP rotation) — what md4all's velocity loss reads as metric translation between frames. None when
        the run has no VO. A frame outside the VO time range (the run's first or last instants) gets the nearest
        VO pose, so every sample of a batch carries the same keys."""
        if self._vo is None:
            return None
        stamps, poses, slerp = self._vo
        t = float(np.clip(float(self.timestamps[index]), stamps[0], stamps[-1]))
        out = np.eye(4)
        out[:3, :3] = slerp([t]).as_matrix()[0]
        out[:3, 3] = [np.interp(t, stamps, poses[:, axis, 3]) for axis in range(3)]
        return out

    def gt_path(self, index: int) -> Path:
        return self.root / self.run / GT_SUBDIR / f"{self.timestamps[index]}.pcd.bin"

    def depth_gt(self, index: int, condition: str) -> np.ndarray:
        """Project the precomputed cloud (``robustdepth data robotcar-gt``) at 960×1280, then crop."""
        path = self.gt_path(index)
        if not path.is_file():
            raise DataError(f"RobotCar GT cloud not found: {path} (precompute it with 'robustdepth data "
                            f"robotcar-gt {self.root} --run {self.run}')")
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size % 3:
            raise DataError(f"{path}: {raw.size} floats is not a 3×N cloud")
        K, G = self._model
        full = project_camera_points(raw.reshape(3, -1).astype(np.float64), K, G, (960, 1280))
        top, left, height, width = self.crop
        return full[top:top + height, left:left + width]


def read_robotcar_split(path: Path) -> list[str]:
    """Centre timestamps of an RNW ("<ts> 1") or md4all ("prev cur next" / "cur") split file."""
    if not path.is_file():
        raise DataError(f"RobotCar split file not found: {path}")
    stamps = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#") or set(line.strip()) == {"-"}:  # RNW: chunk separators
            continue
        stamp = parts[1] if len(parts) == 3 else parts[0]
        if not stamp.isdigit():
            raise DataError(f"{path}:{number}: expected a microsecond timestamp, got {line!r}")
        stamps.append(stamp)
    return stamps


def split_path(splits_dir: Path, run: str, split: str) -> Path:
    """RNW layout ``<run>/<split>_split.txt`` if present, else md4all's ``<run>_<split>[_stride_1].txt``."""
    rnw = splits_dir / run / f"{split}_split.txt"
    if rnw.is_file():
        return rnw
    md4all = splits_dir / (f"{run}_test.txt" if split == "test" else f"{run}_{split}_stride_1.txt")
    return md4all if md4all.is_file() else rnw


@register_dataset("robotcar", options=ROBOTCAR_OPTIONS)
def _robotcar_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    root = Path(data.root)
    options = dict(data.options)
    splits_dir = Path(options.get("splits_dir", root / "splits"))
    camera = str(options.get("camera", "stereo/left"))
    models_dir = Path(options.get("models_dir", root / "models"))
    crop = tuple(int(v) for v in options.get("crop", CROP))
    if len(crop) != 4:
        raise DataError(f"data.options.crop={list(crop)}: need [top, left, height, width]")
    wanted = list(data.train_conditions if train else data.eval_conditions) or ["day", "night"]
    conditions = set(resolve_conditions(wanted, ["day", "night"], "robotcar", {"clear": "day"}))
    runs = [r for r in options.get("runs", list(RUNS)) if RUNS.get(r, "day") in conditions]
    lo, hi = min(frame_ids), max(frame_ids)
    items = []
    for run in runs:
        seq = RobotCarSequence(root, run, camera, models_dir, crop)  # type: ignore[arg-type]
        path = split_path(splits_dir, run, split)
        missing = []
        for stamp in read_robotcar_split(path):
            index = seq.index_of.get(stamp)
            if index is None:
                missing.append(stamp)
            elif index + lo >= 0 and index + hi < seq.num_frames:
                items.append(FrameItem(seq, index, RUNS.get(run, "day"), {"timestamp": stamp}))
        if missing:
            raise DataError(f"{len(missing)} frame(s) of {path} are not in {seq.folder}, e.g. {missing[0]}.png")
    return items


# ------------------------------------------------------------------------------------------ GT precompute


def read_vo_poses(vo_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """Absolute poses (N×4×4) and their timestamps from the SDK's relative VO (pose_k = pose_{k−1}·rel_k)."""
    if not vo_csv.is_file():
        raise DataError(f"RobotCar VO file not found: {vo_csv}")
    stamps: list[int] = []
    poses = [np.eye(4)]
    with vo_csv.open() as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header: source_timestamp, destination_timestamp, x, y, z, roll, pitch, yaw
        for row in reader:
            if not stamps:
                stamps.append(int(row[1]))  # the identity pose sits at the first row's (earlier) destination
            stamps.append(int(row[0]))
            poses.append(poses[-1] @ se3_from_xyzrpy([float(v) for v in row[2:8]]))
    if len(stamps) < 2:
        raise DataError(f"RobotCar VO file {vo_csv} has no pose rows")
    return np.asarray(stamps, dtype=np.int64), np.stack(poses)


def interpolate_poses(stamps: np.ndarray, poses: np.ndarray, query: np.ndarray, origin: int) -> np.ndarray:
    """Poses at ``query`` relative to the pose at ``origin`` (linear translation, SLERP rotation)."""
    lo, hi = stamps[0], stamps[-1]
    if query.min() < lo or query.max() > hi or not lo <= origin <= hi:
        raise DataError(f"requested times outside the VO range [{lo}, {hi}]")
    times = np.concatenate([query, [origin]]).astype(np.float64)
    slerp = Slerp(stamps.astype(np.float64), Rotation.from_matrix(poses[:, :3, :3]))
    out = np.tile(np.eye(4), (len(times), 1, 1))
    out[:, :3, :3] = slerp(times).as_matrix()
    for axis in range(3):
        out[:, axis, 3] = np.interp(times, stamps, poses[:, axis, 3])
    return np.linalg.inv(out[-1]) @ out[:-1]


def accumulate_laser(run_dir: Path, extrinsics_dir: Path, image_stamp: int, camera_extrinsics: str = "stereo",
                     margin_us: int = TIME_MARGIN_US) -> np.ndarray:
    """3×N cloud in the camera frame at ``image_stamp``: front-laser scans within ±margin, placed with VO."""
    ts_file = run_dir / "lms_front.timestamps"
    if not ts_file.is_file():
        raise DataError(f"RobotCar laser timestamps not found: {ts_file}")
    scan_stamps = np.array([int(line.split()[0]) for line in ts_file.read_text().splitlines() if line.strip()])
    scan_stamps = scan_stamps[(scan_stamps >= image_stamp - margin_us) & (scan_stamps <= image_stamp + margin_us)]
    vo_stamps, vo_poses = read_vo_poses(run_dir / "vo" / "vo.csv")
    scan_stamps = scan_stamps[(scan_stamps >= vo_stamps[0]) & (scan_stamps <= vo_stamps[-1])]
    if scan_stamps.size == 0:
        raise DataError(f"no lms_front scans with VO within ±{margin_us} us of {image_stamp} in {run_dir}")
    poses = interpolate_poses(vo_stamps, vo_poses, scan_stamps, image_stamp)
    G_vehicle_laser = read_extrinsics(extrinsics_dir, "lms_front")
    G_camera_vehicle = read_extrinsics(extrinsics_dir, camera_extrinsics)
    clouds = []
    for stamp, pose in zip(scan_stamps, poses):
        scan_path = run_dir / "lms_front" / f"{stamp}.bin"
        scan = np.fromfile(scan_path, dtype=np.float64)
        if scan.size % 3:
            raise DataError(f"{scan_path}: {scan.size} doubles is not a 3×N 2D scan")
        scan = scan.reshape(-1, 3).T  # x, y, reflectance
        xyz1 = np.vstack([scan[:2], np.zeros((1, scan.shape[1])), np.ones((1, scan.shape[1]))])
        clouds.append(G_camera_vehicle @ pose @ G_vehicle_laser @ xyz1)
    return np.hstack(clouds)[:3]


def precompute_gt(root: Path, run: str, stamps: Sequence[str], extrinsics_dir: Path | None = None,
                  progress: bool = True) -> list[Path]:
    """Write md4all's GT clouds (float32 3×N, camera frame) for ``stamps`` of ``run``; existing files are kept."""
    from tqdm.auto import tqdm

    extrinsics_dir = extrinsics_dir or root / "extrinsics"
    out_dir = root / run / GT_SUBDIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stamp in tqdm(list(stamps), desc=f"robotcar gt {run}", unit="img", disable=not progress):
        out = out_dir / f"{stamp}.pcd.bin"
        if not out.is_file():
            cloud = accumulate_laser(root / run, extrinsics_dir, int(stamp))
            cloud.astype(np.float32).tofile(out)
        written.append(out)
    return written
