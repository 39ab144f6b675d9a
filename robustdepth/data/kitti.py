"""KITTI raw in Monodepth2's layout and splits, with the WeatherKITTI variant (WeatherDepth).

Layout (the official raw-data archives unpacked under ``data.root``)::

    ROOT/2011_09_26/calib_cam_to_cam.txt  calib_velo_to_cam.txt  calib_imu_to_velo.txt
    ROOT/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.jpg   (.png with data.options.png=true)
    ROOT/2011_09_26/2011_09_26_drive_0002_sync/image_03/data/…                (right camera: stereo slot)
    ROOT/2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin
    ROOT/2011_09_26/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png  (improved GT)
    ROOT/…/image_02/{raingan/data, snowgan/data, mix_rain/50mm, mix_snow/data, fog/75m, fog/150m}/…  (WeatherKITTI)

Split files are Monodepth2's (``splits/<name>/{train,val,test}_files.txt``, lines
``<date>/<drive> <frame> <l|r>``); ``data.options.splits_dir`` points at the ``splits`` folder.

Facts reproduced from nianticlabs/monodepth2 (read, not copied): ``kitti_dataset.py`` (normalised K
0.58/1.92/0.5/0.5 for every frame, ``side_map``, 10-digit file names, JPEG default, ``--png``,
stereo_T with a 0.1 baseline), ``kitti_utils.py`` (``read_calib_file``, ``generate_depth_map``:
velodyne → P_rect·R_rect·T_velo2cam, pixel = round(u) − 1, duplicates keep the nearest depth via MD2's
``sub2ind``), ``export_gt_depth.py`` (Eigen GT uses the velodyne *x* as depth, ``vel_depth=True``;
eigen_benchmark reads ``proj_depth/groundtruth/image_02`` PNGs / 256). WeatherKITTI folder names
follow wangjiyuan9/WeatherDepth ``datasets/kitti_dataset.py`` / ``WeatherOption``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from robustdepth.data.registry import register_dataset, register_sample_hook
from robustdepth.data.base import DataError, FrameItem, FrameSequence, color_key, read_depth, read_rgb

SIDE_TO_CAMERA = {"l": 2, "r": 3, "2": 2, "3": 3}
OTHER_SIDE = {"l": "r", "r": "l", "2": "3", "3": "2"}
# MD2 kitti_dataset.py: one K for all of KITTI raw, normalised by the image width / height.
MD2_NORMALISED_K = (0.58, 1.92, 0.5, 0.5)  # fx/W, fy/H, cx/W, cy/H


def md2_intrinsics(width: int, height: int) -> np.ndarray:
    """Monodepth2's fixed KITTI K (``MD2_NORMALISED_K``) in pixels of a ``width`` × ``height`` frame."""
    fx, fy, cx, cy = MD2_NORMALISED_K
    return np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]], dtype=np.float32)
# MD2 trains stereo with a nominal 0.1 baseline (hence the ×5.4 STEREO_SCALE_FACTOR at evaluation).
MD2_STEREO_BASELINE = 0.1
# WeatherKITTI condition → (folder, sub-folder) beside image_0X/data (WeatherDepth's WeatherOption).
WEATHERKITTI_FOLDERS: dict[str, tuple[str, str]] = {
    "raingan": ("raingan", "data"),
    "snowgan": ("snowgan", "data"),
    "mix_rain": ("mix_rain", "50mm"),
    "mix_snow": ("mix_snow", "data"),
    "fog_75m": ("fog", "75m"),
    "fog_150m": ("fog", "150m"),
}
# The generic weather each WeatherKITTI variant depicts (what "degraded_condition" reports).
WEATHERKITTI_KIND = {"raingan": "rain", "mix_rain": "rain", "snowgan": "snow", "mix_snow": "snow",
                     "fog_75m": "fog", "fog_150m": "fog"}
# MD2 split name → file of each of our split names.
SPLIT_FILES = {"train": "train_files.txt", "val": "val_files.txt", "test": "test_files.txt"}
KITTI_OPTIONS = ("splits_dir", "split", "test_split", "png", "stereo", "gt", "intrinsics", "weatherkitti",
                 "weather_p", "weather_conditions")


# ------------------------------------------------------------------------------------------ split files


@dataclass(frozen=True)
class SplitEntry:
    """One line of an MD2 split file: drive folder, frame index, camera side."""

    folder: str
    frame: int
    side: str

    @property
    def camera(self) -> int:
        return SIDE_TO_CAMERA[self.side]


def read_split_file(path: Path) -> list[SplitEntry]:
    """Parse an MD2 split file (``<date>/<drive> <frame> <l|r>`` per line); errors name the line."""
    if not path.is_file():
        raise DataError(f"KITTI split file not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in SIDE_TO_CAMERA or not parts[1].isdigit():
            raise DataError(f"{path}:{number}: expected '<date>/<drive> <frame> <l|r>', got {line!r}")
        entries.append(SplitEntry(parts[0], int(parts[1]), parts[2]))
    if not entries:
        raise DataError(f"KITTI split file {path} is empty")
    return entries


def split_file_for(splits_dir: Path, split: str, train_split: str, test_split: str) -> Path:
    """The split file for our split name: train/val → ``<split>/…``, test → ``<test_split>/test_files.txt``;
    any other name is an MD2 split folder (its test_files.txt) or a path to a split file."""
    if split in ("train", "val"):
        return splits_dir / train_split / SPLIT_FILES[split]
    if split == "test":
        return splits_dir / test_split / SPLIT_FILES["test"]
    if Path(split).is_file():
        return Path(split)
    return splits_dir / split / SPLIT_FILES["test"]


# ------------------------------------------------------------------------------------------ calibration


def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v1 v2 …`` calibration text; numeric values only (``calib_time`` etc. are skipped)."""
    if not path.is_file():
        raise DataError(f"KITTI calibration file not found: {path}")
    data: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            data[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # non-numeric entries such as calib_time
    return data


def _calib_entry(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        raise DataError(f"{path} lacks {key} with {size} numbers (is it a KITTI raw calibration file?)")
    return calib[key]


def velodyne_to_image(calib_dir: Path, camera: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """MD2's ``P_velo2im = P_rect_0c · R_rect_00 · [R|T]_velo2cam`` (3×4) and the rectified image (H, W)."""
    c2c_path, v2c_path = calib_dir / "calib_cam_to_cam.txt", calib_dir / "calib_velo_to_cam.txt"
    cam2cam, velo2cam = read_calib_file(c2c_path), read_calib_file(v2c_path)
    T = np.eye(4)
    T[:3, :3] = _calib_entry(velo2cam, "R", 9, v2c_path).reshape(3, 3)
    T[:3, 3] = _calib_entry(velo2cam, "T", 3, v2c_path)
    R_rect = np.eye(4)
    R_rect[:3, :3] = _calib_entry(cam2cam, "R_rect_00", 9, c2c_path).reshape(3, 3)
    P_rect = _calib_entry(cam2cam, f"P_rect_0{camera}", 12, c2c_path).reshape(3, 4)
    width, height = _calib_entry(cam2cam, f"S_rect_0{camera}", 2, c2c_path).astype(int)
    return P_rect @ R_rect @ T, (int(height), int(width))


def rectified_intrinsics(calib_dir: Path, camera: int = 2) -> np.ndarray:
    """3×3 K of the rectified camera (P_rect_0c) in native pixels."""
    path = calib_dir / "calib_cam_to_cam.txt"
    return _calib_entry(read_calib_file(path), f"P_rect_0{camera}", 12, path).reshape(3, 4)[:, :3].copy()


VELODYNE_POINT_BYTES = 16  # x, y, z, reflectance as float32


def scan_size_problem(path: Path) -> str | None:
    """Why a velodyne ``.bin`` cannot be a whole scan (empty, or not whole N×4 float32 rows), else None.

    A truncated download or copy usually cuts a scan mid-point; ``data check`` reports it before an
    evaluation silently loses points.
    """
    size = path.stat().st_size
    if size == 0:
        return f"velodyne scan {path} is empty"
    if size % VELODYNE_POINT_BYTES:
        return (f"velodyne scan {path} has {size} bytes, not whole {VELODYNE_POINT_BYTES}-byte points "
                "(x, y, z, reflectance float32): truncated?")
    return None


def load_velodyne_points(path: Path) -> np.ndarray:
    """N×4 float32 scan (x fwd, y left, z up, reflectance) → N×4 with the 4th column set to 1 (homogeneous)."""
    if not path.is_file():
        raise DataError(f"velodyne scan not found: {path}")
    problem = scan_size_problem(path)
    if problem:
        raise DataError(problem)
    raw = np.fromfile(path, dtype=np.float32)
    points = raw.reshape(-1, 4).astype(np.float64)
    points[:, 3] = 1.0
    return points


def project_velodyne(points: np.ndarray, P_velo2im: np.ndarray, shape: tuple[int, int],
                     vel_depth: bool = False) -> np.ndarray:
    """Sparse depth (H×W, 0 = none) of homogeneous velodyne points, exactly as MD2's generate_depth_map.

    Points behind the velodyne (x < 0) are dropped; pixel = round(u) − 1 (MD2's MATLAB-origin offset);
    depth is the camera z, or the velodyne x with ``vel_depth`` (what MD2 exports as Eigen GT). Where
    several points hit one pixel the nearest wins; duplicates are found with MD2's ``sub2ind``
    (``row·(W−1) + col − 1``), whose collisions of (r, W−1) with (r+1, 0) are reproduced on purpose.
    """
    height, width = shape
    points = points[points[:, 0] >= 0]
    proj = points @ P_velo2im.T
    proj[:, :2] /= proj[:, 2:3]
    if vel_depth:
        proj[:, 2] = points[:, 0]
    cols = np.round(proj[:, 0]) - 1
    rows = np.round(proj[:, 1]) - 1
    keep = (cols >= 0) & (rows >= 0) & (cols < width) & (rows < height)
    cols, rows, z = cols[keep].astype(np.int64), rows[keep].astype(np.int64), proj[keep, 2]
    depth = np.zeros((height, width), dtype=np.float64)
    depth[rows, cols] = z  # numpy: the last of repeated indices wins, as in MD2 before its duplicate pass
    inds = rows * (width - 1) + cols - 1
    _, first, inverse, counts = np.unique(inds, return_index=True, return_inverse=True, return_counts=True)
    dup = np.flatnonzero(counts > 1)
    if dup.size:
        group_min = np.full(counts.size, np.inf)
        np.minimum.at(group_min, inverse, z)
        depth[rows[first[dup]], cols[first[dup]]] = group_min[dup]
    depth[depth < 0] = 0
    return depth.astype(np.float32)


def generate_depth_map(calib_dir: Path, velo_path: Path, camera: int = 2, vel_depth: bool = False) -> np.ndarray:
    """MD2's velodyne GT for one frame at the rectified image size of ``camera``."""
    P, shape = velodyne_to_image(calib_dir, camera)
    return project_velodyne(load_velodyne_points(velo_path), P, shape, vel_depth)


# ------------------------------------------------------------------------------------------ sequences


class KittiSequence(FrameSequence):
    """One camera (image_02 or image_03) of one raw drive; frame index = the 10-digit file number."""

    def __init__(self, root: Path, folder: str, camera: int, ext: str = ".jpg", gt: str = "velodyne",
                 intrinsics: str = "md2") -> None:
        self.root, self.folder, self.camera, self.ext = root, folder, camera, ext
        self.gt, self.intrinsics_mode = gt, intrinsics
        self.name = f"{folder}/image_0{camera}"
        self.drive_dir = root / folder
        self.calib_dir = root / folder.split("/")[0]
        self.probe_index = 0

    @property
    def num_frames(self) -> int:
        return len(list((self.drive_dir / f"image_0{self.camera}" / "data").glob(f"*{self.ext}")))

    def image_path(self, index: int, condition: str) -> Path:
        base = self.drive_dir / f"image_0{self.camera}"
        if condition == "clear":
            return base / "data" / f"{index:010d}{self.ext}"
        if condition not in WEATHERKITTI_FOLDERS:
            raise DataError(f"KITTI condition {condition!r} unknown; valid: clear, {sorted(WEATHERKITTI_FOLDERS)}")
        folder, sub = WEATHERKITTI_FOLDERS[condition]
        return base / folder / sub / f"{index:010d}{self.ext}"

    @cached_property
    def native_size(self) -> tuple[int, int]:
        """(W, H) of the stored frames (read from one image header; KITTI sizes differ per recording day)."""
        path = self.image_path(self.probe_index, "clear")
        if not path.is_file():
            raise DataError(f"image not found: {path} (JPEG vs PNG? set data.options.png to match the files)")
        with Image.open(path) as img:
            return img.size

    @cached_property
    def _K(self) -> np.ndarray:
        if self.intrinsics_mode == "calib":
            return rectified_intrinsics(self.calib_dir, self.camera).astype(np.float32)
        return md2_intrinsics(*self.native_size)

    def intrinsics(self) -> np.ndarray:
        return self._K

    def velodyne_path(self, index: int) -> Path:
        return self.drive_dir / "velodyne_points" / "data" / f"{index:010d}.bin"

    def improved_gt_path(self, index: int) -> Path:
        return self.drive_dir / "proj_depth" / "groundtruth" / f"image_0{self.camera}" / f"{index:010d}.png"

    def depth_gt(self, index: int, condition: str) -> np.ndarray:
        """MD2's evaluation GT: velodyne x projected into this camera, or the improved GT PNG (÷256)."""
        if self.gt == "improved":
            return read_depth(self.improved_gt_path(index))
        return generate_depth_map(self.calib_dir, self.velodyne_path(index), self.camera, vel_depth=True)


# ------------------------------------------------------------------------------------------ items


def kitti_settings(options: dict[str, Any], root: Path) -> dict[str, Any]:
    """Resolved ``data.options`` with their defaults (and checks that name the offending value)."""
    settings = {
        "splits_dir": Path(options.get("splits_dir", root / "splits")),
        "split": str(options.get("split", "eigen_zhou")),
        "test_split": str(options.get("test_split", "eigen")),
        "png": bool(options.get("png", False)),
        "stereo": bool(options.get("stereo", False)),
        "gt": options.get("gt"),
        "intrinsics": str(options.get("intrinsics", "md2")),
        "weatherkitti": bool(options.get("weatherkitti", False)),
        "weather_p": float(options.get("weather_p", 0.5)),
        "weather_conditions": list(options.get("weather_conditions", list(WEATHERKITTI_FOLDERS))),
    }
    if settings["intrinsics"] not in ("md2", "calib"):
        raise DataError(f"data.options.intrinsics={settings['intrinsics']!r}: use md2 (0.58/1.92) or calib")
    if settings["gt"] not in (None, "velodyne", "improved"):
        raise DataError(f"data.options.gt={settings['gt']!r}: use velodyne or improved")
    unknown = [c for c in settings["weather_conditions"] if c not in WEATHERKITTI_FOLDERS]
    if unknown:
        raise DataError(f"data.options.weather_conditions {unknown} unknown; valid: {sorted(WEATHERKITTI_FOLDERS)}")
    if not 0 <= settings["weather_p"] <= 1:
        raise DataError(f"data.options.weather_p={settings['weather_p']}: must be in [0, 1]")
    return settings


def kitti_items(root: Path, entries: Sequence[SplitEntry], conditions: Sequence[str], ext: str, gt: str,
                intrinsics: str = "md2") -> list[FrameItem]:
    """One item per split line and condition, sharing one sequence object per (drive, camera)."""
    sequences: dict[tuple[str, int], KittiSequence] = {}
    items = []
    for entry in entries:
        key = (entry.folder, entry.camera)
        if key not in sequences:
            sequences[key] = KittiSequence(root, entry.folder, entry.camera, ext, gt, intrinsics)
            sequences[key].probe_index = entry.frame
        items.extend(FrameItem(sequences[key], entry.frame, c, {"side": entry.side}) for c in conditions)
    return items


@register_dataset("kitti", options=KITTI_OPTIONS)
def _kitti_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    root = Path(data.root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder (expected the KITTI raw root holding 2011_09_26/ …)")
    s = kitti_settings(dict(data.options), root)
    path = split_file_for(s["splits_dir"], split, s["split"], s["test_split"])
    entries = read_split_file(path)
    is_benchmark = path.parent.name == "eigen_benchmark"
    gt = s["gt"] or ("improved" if is_benchmark else "velodyne")
    if train:
        conditions = ["clear"]
    else:
        conditions = list(data.eval_conditions) or (["clear", *s["weather_conditions"]] if s["weatherkitti"]
                                                    else ["clear"])
        bad = [c for c in conditions if c != "clear" and c not in WEATHERKITTI_FOLDERS]
        if bad:
            raise DataError(f"data.eval_conditions {bad} are not KITTI conditions; valid: clear, "
                            f"{sorted(WEATHERKITTI_FOLDERS)}")
    return kitti_items(root, entries, conditions, ".png" if s["png"] else ".jpg", gt, s["intrinsics"])


# ------------------------------------------------------------------------------------------ hooks


def _load_resized(path: Path, width: int, height: int, flipped: bool) -> torch.Tensor:
    img = read_rgb(path)
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    tensor = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    return tensor.flip(-1) if flipped else tensor


class StereoHook:
    """MD2's stereo slot: ``color_key("s")``/``color_key("s", aug=True)`` (``"color:s"``/``"color_aug:s"``, the
    other camera, same frame) and
    ``"stereo_T"`` (4×4 target→other camera, x-translation ±0.1 by side and flip, as MD2)."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        seq = item.sequence
        if not isinstance(seq, KittiSequence):
            raise DataError("data.options.stereo needs KITTI items")
        side = item.extra.get("side", "l")
        other = KittiSequence(seq.root, seq.folder, SIDE_TO_CAMERA[OTHER_SIDE[side]], seq.ext)
        frame = _load_resized(other.image_path(item.index, "clear"), self.width, self.height, flipped)
        sample[color_key("s")] = frame
        sample[color_key("s", aug=True)] = augment(frame)
        T = torch.eye(4)
        T[0, 3] = (-1.0 if side in ("l", "2") else 1.0) * (-1.0 if flipped else 1.0) * MD2_STEREO_BASELINE
        sample["stereo_T"] = T


class WeatherKittiHook:
    """WeatherKITTI pairs: with probability ``p`` the sample's degraded slots hold the pixel-aligned
    weather version of the target (one of ``conditions``, uniformly), as robustdepth.degrade.supply does."""

    def __init__(self, height: int, width: int, p: float, conditions: Sequence[str]) -> None:
        self.height, self.width, self.p, self.conditions = height, width, p, list(conditions)

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        degrade = bool(torch.rand((), generator=gen) < self.p)
        choice = int(torch.randint(len(self.conditions), (), generator=gen))
        if not degrade:
            sample["degraded"], sample["degraded_aug"] = sample[color_key(0)], sample[color_key(0, aug=True)]
            sample["is_degraded"], sample["degraded_condition"] = False, "clear"
            return
        variant = self.conditions[choice]
        frame = _load_resized(item.sequence.image_path(item.index, variant), self.width, self.height, flipped)
        sample["degraded"], sample["degraded_aug"] = frame, augment(frame)
        sample["is_degraded"], sample["degraded_condition"] = True, WEATHERKITTI_KIND[variant]


@register_sample_hook
def kitti_hook_factory(cfg: Any, split: str, train: bool) -> Callable[..., None] | None:
    """Stereo slot and/or WeatherKITTI degraded slots for KITTI training splits."""
    if cfg.data.dataset != "kitti" or not train:
        return None
    s = kitti_settings(dict(cfg.data.options), Path(cfg.data.root))
    hooks: list[Callable[..., None]] = []
    if s["stereo"]:
        hooks.append(StereoHook(cfg.data.height, cfg.data.width))
    if s["weatherkitti"]:
        if cfg.degrade.mode != "none":
            raise DataError("data.options.weatherkitti fills the degraded slots itself: set degrade.mode=none "
                            f"(got {cfg.degrade.mode!r})")
        hooks.append(WeatherKittiHook(cfg.data.height, cfg.data.width, s["weather_p"], s["weather_conditions"]))
    if not hooks:
        return None

    def run_all(item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        for hook in hooks:
            hook(item, sample, gen, flipped, augment)
    return run_all


# ------------------------------------------------------------------------------------------ GT export


def export_gt(root: Path, split_file: Path, out: Path, benchmark: bool | None = None,
              progress: bool = True, overwrite: bool = False) -> Path:
    """MD2's ``export_gt_depth.py``: every test frame's GT into ``gt_depths.npz``.

    Eigen: velodyne x projected into camera 2; eigen_benchmark (or ``benchmark=True``): the improved GT
    PNGs ÷ 256. Frames of one size are stored as MD2 does (key ``data``, N×H×W). Frames of different
    sizes (the real Eigen split mixes recording days) are stored without pickled objects: every map
    flattened into key ``depths`` and their (H, W) in key ``shapes`` — read either form with
    :func:`load_gt_depths`. An existing ``out`` is refused unless ``overwrite`` (a re-export must not
    silently replace the GT an earlier table was scored on).
    """
    from tqdm.auto import tqdm

    if out.exists() and not overwrite:
        raise DataError(f"{out} exists; pass --overwrite (or another --out) to replace it")
    entries = read_split_file(split_file)
    benchmark = split_file.parent.name == "eigen_benchmark" if benchmark is None else benchmark
    depths = []
    for entry in tqdm(entries, desc="export gt", unit="img", disable=not progress):
        seq = KittiSequence(root, entry.folder, 2, gt="improved" if benchmark else "velodyne")
        depths.append(seq.depth_gt(entry.frame, "clear").astype(np.float32))
    out.parent.mkdir(parents=True, exist_ok=True)
    if len({d.shape for d in depths}) == 1:
        np.savez_compressed(out, data=np.stack(depths))
    else:
        np.savez_compressed(out, depths=np.concatenate([d.ravel() for d in depths]),
                            shapes=np.array([d.shape for d in depths], dtype=np.int64))
    return out


def load_gt_depths(path: Path) -> list[np.ndarray]:
    """The GT maps of a ``gt_depths.npz`` written by :func:`export_gt` (either form), never unpickling."""
    with np.load(path, allow_pickle=False) as npz:
        if "data" in npz.files:
            try:
                return list(npz["data"])
            except ValueError:
                raise DataError(f"{path} stores pickled objects (an MD2-style mixed-size export); re-export it "
                                "with 'robustdepth data export-gt … --overwrite'") from None
        if not {"depths", "shapes"} <= set(npz.files):
            raise DataError(f"{path} holds neither 'data' nor 'depths'+'shapes' (not a gt_depths.npz)")
        flat, shapes = npz["depths"], npz["shapes"]
    ends = np.cumsum([h * w for h, w in shapes])
    if ends[-1] != flat.size:
        raise DataError(f"{path}: shapes cover {ends[-1]} values, depths hold {flat.size}")
    return [chunk.reshape(shape) for chunk, shape in zip(np.split(flat, ends[:-1]), shapes)]
