"""nuScenes CAM_FRONT in md4all's protocol, read straight from the official JSON tables.

Layout (``data.root`` = the nuScenes root)::

    ROOT/v1.0-trainval/{scene,sample,sample_data,calibrated_sensor,sensor,ego_pose,log}.json  (or v1.0-mini)
    ROOT/samples/CAM_FRONT/<log>__CAM_FRONT__<us>.jpg        keyframes (2 Hz, targets)
    ROOT/sweeps/CAM_FRONT/<log>__CAM_FRONT__<us>.jpg         intermediate frames (~12 Hz, sources)
    ROOT/samples/LIDAR_TOP/<log>__LIDAR_TOP__<us>.pcd.bin    float32 × 5 (x, y, z, intensity, ring)

Why not nuscenes-devkit: it loads every table (incl. annotations) and pulls matplotlib/shapely/
pyquaternion/scikit-learn; a loader needs six tables and ~50 lines. Only the official scene → train/val
assignment lives in the devkit (``nuscenes.utils.splits.create_splits_scenes``): it is used when installed,
else ``data.options.scene_splits`` (JSON ``{"train": [...], "val": [...]}``) must name the scenes; for
v1.0-mini md4all's rule applies (scene indices 1 and 9 are val).

md4all facts (md4all/md4all ``data/nuscenes_dataset.py``, read, not copied): targets are CAM_FRONT
keyframes, sources the previous/next CAM_FRONT sample_data (sweeps); condition = "night" if the scene
description contains "night" else "day", + "-rain" if it contains "rain" else "-clear"; the static
filter keeps train keyframes whose mean speed to prev and next CAM_FRONT frames is >= 0.5 m/s (val is
never filtered); GT = LIDAR_TOP keyframe mapped into the camera (devkit ``map_pointcloud_to_image``:
lidar → ego → global → ego(cam time) → camera, depth > 1 m, 1 < u < W−1, 1 < v < H−1), pixel =
int(u), int(v) (truncation), later points overwrite earlier ones. Daytime normalisation statistics from
md4all's configs.

Condition labels: ``day-clear``, ``day-rain``, ``night`` (md4all reports night-clear + night-rain as one
"night"); the fine label is kept in ``item.extra["weather"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from robustdepth.data.registry import HOOK_NORMALISE, register_dataset, register_sample_hook
from robustdepth.data.base import COLOR_AUG, DataError, FrameItem, FrameSequence, color_key, key_slot

TABLES = ("scene", "sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose")
CAMERA = "CAM_FRONT"
LIDAR = "LIDAR_TOP"
STATIC_SPEED = 0.5  # m/s, md4all drop_static_samples
LIDAR_MIN_DIST = 1.0  # devkit map_pointcloud_to_image default, used by md4all
MINI_VAL_SCENE_INDICES = (1, 9)  # md4all get_train_val_indices for v1.0-mini
CONDITION_ALIASES = {"clear": "day-clear", "rain": "day-rain", "day": "day-clear"}
# md4all daytime normalisation (mean, std) of the [0, 1] image, per dataset and day/night.
DAYTIME_NORM = {
    "nuscenes": {"day": (0.4130, 0.2093), "night": (0.1652, 0.1728)},
    "robotcar": {"day": (0.5758, 0.319), "night": (0.2471, 0.2627)},
}
NUSCENES_OPTIONS = ("version", "scene_splits", "static_filter", "daytime_norm")


# ------------------------------------------------------------------------------------------ tables


def load_tables(root: Path, version: str) -> dict[str, list[dict[str, Any]]]:
    """The six tables this loader needs, as lists of records (errors name the missing file)."""
    folder = root / version
    if not folder.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v1.0")) \
            if root.is_dir() else []
        raise DataError(f"nuScenes tables folder {folder} not found (versions under {root}: {have or 'none'})")
    tables = {}
    for name in TABLES:
        path = folder / f"{name}.json"
        if not path.is_file():
            raise DataError(f"nuScenes table missing: {path}")
        tables[name] = json.loads(path.read_text())
    return tables


def scene_condition(description: str) -> str:
    """md4all's weather label of a scene description: day|night + -clear|-rain."""
    text = description.lower()
    return ("night" if "night" in text else "day") + ("-rain" if "rain" in text else "-clear")


def reported_condition(weather: str) -> str:
    """The label md4all reports: night-clear and night-rain both count as "night"."""
    return "night" if weather.startswith("night") else weather


def pose_matrix(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> np.ndarray:
    """4×4 from a nuScenes translation and a [w, x, y, z] quaternion."""
    w, x, y, z = rotation_wxyz
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    T[:3, 3] = translation
    return T


@dataclass
class CameraFrame:
    """One CAM_FRONT sample_data record, reduced to what the loader needs."""

    token: str
    filename: str
    timestamp: int
    is_key_frame: bool
    sample_token: str
    ego_to_global: np.ndarray
    cam_to_ego: np.ndarray
    K: np.ndarray


class NuScenesIndex:
    """Token lookups over the tables, and the CAM_FRONT chains of every scene."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = tables
        self.by_token = {name: {r["token"]: r for r in rows} for name, rows in tables.items()}
        self.channel_of_calib = {c["token"]: self.by_token["sensor"][c["sensor_token"]]["channel"]
                                 for c in tables["calibrated_sensor"]}

    def channel(self, sample_data: dict[str, Any]) -> str:
        return self.channel_of_calib[sample_data["calibrated_sensor_token"]]

    def sample_channel_data(self, sample_token: str, channel: str) -> dict[str, Any]:
        """The sample_data of ``channel`` that belongs to keyframe ``sample_token``."""
        lookup = self._keyframe_lookup()
        key = (sample_token, channel)
        if key not in lookup:
            raise DataError(f"nuScenes sample {sample_token} has no {channel} keyframe in sample_data.json")
        return lookup[key]

    def _keyframe_lookup(self) -> dict[tuple[str, str], dict[str, Any]]:
        if not hasattr(self, "_kf"):
            self._kf = {(sd["sample_token"], self.channel(sd)): sd for sd in self.tables["sample_data"]
                        if sd["is_key_frame"]}
        return self._kf

    def camera_frame(self, sd: dict[str, Any]) -> CameraFrame:
        ego = self.by_token["ego_pose"][sd["ego_pose_token"]]
        calib = self.by_token["calibrated_sensor"][sd["calibrated_sensor_token"]]
        return CameraFrame(sd["token"], sd["filename"], int(sd["timestamp"]), bool(sd["is_key_frame"]),
                           sd["sample_token"], pose_matrix(ego["translation"], ego["rotation"]),
                           pose_matrix(calib["translation"], calib["rotation"]),
                           np.asarray(calib["camera_intrinsic"], dtype=np.float32).reshape(3, 3))

    def camera_chain(self, scene: dict[str, Any], channel: str = CAMERA) -> list[dict[str, Any]]:
        """Every ``channel`` sample_data of a scene in time order (prev/next links from its first keyframe)."""
        sd = self.sample_channel_data(scene["first_sample_token"], channel)
        table = self.by_token["sample_data"]
        while sd["prev"]:
            sd = table[sd["prev"]]
        chain = [sd]
        while sd["next"]:
            sd = table[sd["next"]]
            chain.append(sd)
        return chain


def ego_speeds(index: NuScenesIndex, sd: dict[str, Any]) -> list[float] | None:
    """Ego speed (m/s) from ``sd`` to its previous and next frame; None at a chain end (md4all drops those)."""
    if not sd["prev"] or not sd["next"]:
        return None
    here = np.asarray(index.by_token["ego_pose"][sd["ego_pose_token"]]["translation"], dtype=np.float64)
    speeds = []
    for direction in ("prev", "next"):
        other = index.by_token["sample_data"][sd[direction]]
        there = np.asarray(index.by_token["ego_pose"][other["ego_pose_token"]]["translation"], dtype=np.float64)
        seconds = abs(int(other["timestamp"]) - int(sd["timestamp"])) * 1e-6
        speeds.append(float(np.linalg.norm(here - there) / seconds))
    return speeds


# ------------------------------------------------------------------------------------------ splits


def scene_split_names(tables: dict[str, list[dict[str, Any]]], version: str,
                      scene_splits: str | None) -> dict[str, set[str]]:
    """Scene names of train and val: a user JSON, the devkit's official lists, or md4all's mini rule."""
    if scene_splits:
        path = Path(scene_splits)
        if not path.is_file():
            raise DataError(f"data.options.scene_splits file not found: {path}")
        data = json.loads(path.read_text())
        return {k: set(data.get(k, [])) for k in ("train", "val")}
    scenes = tables["scene"]
    if "mini" in version:
        val = {s["name"] for i, s in enumerate(scenes) if i in MINI_VAL_SCENE_INDICES}
        return {"train": {s["name"] for s in scenes} - val, "val": val}
    try:
        from nuscenes.utils.splits import create_splits_scenes  # type: ignore[import-not-found]
    except ImportError:
        raise DataError(f"nuScenes {version}: the official train/val scene lists come from nuscenes-devkit "
                        "(pip install nuscenes-devkit) or a JSON {\"train\": [...], \"val\": [...]} given as "
                        "data.options.scene_splits") from None
    official = create_splits_scenes(verbose=False)
    return {"train": set(official["train"]), "val": set(official["val"])}


def read_static_filter(path: Path) -> set[str]:
    """Sample tokens kept by a static filter (ours: {"keep": [...]}; md4all's list of sample records)."""
    if not path.is_file():
        raise DataError(f"static filter file not found: {path} (write it with 'robustdepth data static-filter "
                        "nuscenes ROOT --out FILE')")
    data = json.loads(path.read_text())
    records = data["keep"] if isinstance(data, dict) and "keep" in data else data
    if not isinstance(records, list):
        raise DataError(f"static filter {path}: expected {{'keep': [tokens]}} or a list of sample records")
    return {r["token"] if isinstance(r, dict) else str(r) for r in records}


def static_filter(root: Path, version: str = "v1.0-trainval", scene_splits: str | None = None,
                  threshold: float = STATIC_SPEED) -> dict[str, Any]:
    """md4all's static-frame filter: train keyframes whose mean CAM_FRONT ego speed to prev/next is
    >= ``threshold`` m/s (and that have both neighbours) are kept; val keyframes are always kept."""
    tables = load_tables(root, version)
    index = NuScenesIndex(tables)
    splits = scene_split_names(tables, version, scene_splits)
    scene_name = {s["token"]: s["name"] for s in tables["scene"]}
    keep, dropped = [], 0
    for sample in tables["sample"]:
        if scene_name[sample["scene_token"]] not in splits["train"]:
            keep.append(sample["token"])
            continue
        speeds = ego_speeds(index, index.sample_channel_data(sample["token"], CAMERA))
        if speeds is not None and sum(speeds) / len(speeds) >= threshold:
            keep.append(sample["token"])
        else:
            dropped += 1
    return {"version": version, "threshold_mps": threshold, "camera": CAMERA, "dropped": dropped, "keep": keep}


# ------------------------------------------------------------------------------------------ sequences


def lidar_to_camera_depth(points: np.ndarray, lidar_to_ego: np.ndarray, lidar_ego_to_global: np.ndarray,
                          cam_ego_to_global: np.ndarray, cam_to_ego: np.ndarray, K: np.ndarray,
                          shape: tuple[int, int], min_dist: float = LIDAR_MIN_DIST) -> np.ndarray:
    """Sparse depth image (H×W) of lidar points, as the devkit's map_pointcloud_to_image + md4all."""
    height, width = shape
    T = np.linalg.inv(cam_to_ego) @ np.linalg.inv(cam_ego_to_global) @ lidar_ego_to_global @ lidar_to_ego
    xyz = points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    depth = xyz[:, 2]
    uvw = xyz @ K.astype(np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    keep = (depth > min_dist) & (u > 1) & (u < width - 1) & (v > 1) & (v < height - 1)
    image = np.zeros((height, width), dtype=np.float32)
    image[v[keep].astype(np.int32), u[keep].astype(np.int32)] = depth[keep]  # md4all: truncation, last wins
    return image


def read_lidar(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"nuScenes lidar file not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 5:
        raise DataError(f"nuScenes lidar file {path} has {raw.size} floats, not a multiple of 5 (x,y,z,i,ring)")
    return raw.reshape(-1, 5)


class NuScenesSequence(FrameSequence):
    """The CAM_FRONT frames (keyframes and sweeps) of one scene, in time order."""

    def __init__(self, root: Path, name: str, frames: list[CameraFrame], weather: str,
                 lidar: dict[str, dict[str, Any]], image_hw: tuple[int, int]) -> None:
        self.root, self.name, self.frames, self.weather = root, name, frames, weather
        self.lidar = lidar  # sample token → {"filename", "lidar_to_ego", "ego_to_global"}
        self.image_hw = image_hw

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def image_path(self, index: int, condition: str) -> Path:
        return self.root / self.frames[index].filename

    def intrinsics(self) -> np.ndarray:
        return self.frames[0].K

    def intrinsics_at(self, index: int) -> np.ndarray:
        return self.frames[index].K

    def pose(self, index: int) -> np.ndarray:
        """Camera-to-global pose: the |Δt| of two frames is the ego motion the velocity loss needs."""
        frame = self.frames[index]
        return frame.ego_to_global @ frame.cam_to_ego

    def depth_gt(self, index: int, condition: str) -> np.ndarray | None:
        frame = self.frames[index]
        if not frame.is_key_frame or frame.sample_token not in self.lidar:
            return None
        lidar = self.lidar[frame.sample_token]
        return lidar_to_camera_depth(read_lidar(self.root / lidar["filename"]), lidar["lidar_to_ego"],
                                     lidar["ego_to_global"], frame.ego_to_global, frame.cam_to_ego, frame.K,
                                     self.image_hw)


def build_sequences(root: Path, tables: dict[str, list[dict[str, Any]]],
                    scene_names: set[str] | None = None) -> list[NuScenesSequence]:
    """One CAM_FRONT sequence per scene (optionally only the named scenes)."""
    index = NuScenesIndex(tables)
    sequences = []
    for scene in tables["scene"]:
        if scene_names is not None and scene["name"] not in scene_names:
            continue
        chain = index.camera_chain(scene)
        frames = [index.camera_frame(sd) for sd in chain]
        lidar = {}
        for sd in chain:
            if sd["is_key_frame"]:
                lsd = index.sample_channel_data(sd["sample_token"], LIDAR)
                ego = index.by_token["ego_pose"][lsd["ego_pose_token"]]
                calib = index.by_token["calibrated_sensor"][lsd["calibrated_sensor_token"]]
                lidar[sd["sample_token"]] = {
                    "filename": lsd["filename"],
                    "lidar_to_ego": pose_matrix(calib["translation"], calib["rotation"]),
                    "ego_to_global": pose_matrix(ego["translation"], ego["rotation"])}
        hw = (int(chain[0].get("height") or 900), int(chain[0].get("width") or 1600))
        sequences.append(NuScenesSequence(root, scene["name"], frames, scene_condition(scene["description"]),
                                          lidar, hw))
    return sequences


def resolve_conditions(wanted: Sequence[str], available: Sequence[str], dataset: str,
                       aliases: dict[str, str]) -> list[str]:
    """Map requested condition names (with aliases such as clear → day-clear) onto this dataset's labels."""
    resolved = [aliases.get(c, c) for c in wanted]
    bad = [c for c in resolved if c not in available]
    if bad:
        raise DataError(f"{dataset}: condition(s) {bad} unknown; labels are {list(available)} "
                        f"(aliases {aliases})")
    return resolved


@register_dataset("nuscenes", options=NUSCENES_OPTIONS)
def _nuscenes_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    root = Path(data.root)
    options = dict(data.options)
    version = str(options.get("version", "v1.0-trainval"))
    tables = load_tables(root, version)
    splits = scene_split_names(tables, version, options.get("scene_splits"))
    which = "train" if split == "train" else "val"  # md4all evaluates on val (val and test splits = val)
    keep = read_static_filter(Path(options["static_filter"])) if options.get("static_filter") and train else None
    labels = ["day-clear", "day-rain", "night"]
    wanted = list(data.train_conditions if train else data.eval_conditions) or labels
    conditions = set(resolve_conditions(wanted, labels, "nuscenes", CONDITION_ALIASES))
    lo, hi = min(frame_ids), max(frame_ids)
    items = []
    for seq in build_sequences(root, tables, splits[which]):
        label = reported_condition(seq.weather)
        if label not in conditions:
            continue
        for i, frame in enumerate(seq.frames):
            if not frame.is_key_frame or i + lo < 0 or i + hi >= seq.num_frames:
                continue
            if keep is not None and frame.sample_token not in keep:
                continue
            items.append(FrameItem(seq, i, label, {"weather": seq.weather, "sample_token": frame.sample_token}))
    return items


# ------------------------------------------------------------------------------------------ normalisation


def daytime_remap(image: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """The input that makes the network's fixed MD2 normalisation ((x − 0.45)/0.225) equal md4all's
    daytime normalisation ((x − mean)/std)."""
    from robustdepth.networks.resnet import MD2_INPUT_MEAN, MD2_INPUT_STD

    return MD2_INPUT_MEAN + MD2_INPUT_STD * (image - mean) / std


class DaytimeNormHook:
    """md4all's daytime normalisation as a data option, applied to EVERY network input: the jittered slots,
    the student's degraded input, and — as ``"clean_input"`` / ``"degraded_input"`` — the un-jittered clean and
    degraded frames that the frozen teacher and the student's clean pass (ACDepth's L_c) see through
    ``ctx.image("clean")``. Each is remapped with the day or night statistics of its (possibly translated)
    condition; loss slots (``color_key(f)``, ``"degraded"``) stay raw in training. At evaluation
    ``color_key(0)`` — the runner's input — is remapped. The condition label is needed at test time too
    (docs/methods.md § md4all-DD)."""

    def __init__(self, stats: dict[str, tuple[float, float]], train: bool) -> None:
        self.stats, self.train = stats, train

    def _stats(self, condition: str) -> tuple[float, float]:
        return self.stats["night" if condition.startswith("night") else "day"]

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        mean, std = self._stats(item.condition)
        if not self.train:
            sample[color_key(0)] = daytime_remap(sample[color_key(0)], mean, std)
            return
        for key in [k for k in sample if key_slot(k) == COLOR_AUG]:
            sample[key] = daytime_remap(sample[key], mean, std)
        sample["clean_input"] = daytime_remap(sample[color_key(0)], mean, std)
        if "degraded_aug" in sample:
            condition = sample.get("degraded_condition", "clear")
            d_mean, d_std = self._stats(condition) if sample.get("is_degraded") else (mean, std)
            sample["degraded_aug"] = daytime_remap(sample["degraded_aug"], d_mean, d_std) \
                if sample.get("is_degraded") else sample[color_key(0, aug=True)]
            sample["degraded_input"] = daytime_remap(sample["degraded"], d_mean, d_std)


@register_sample_hook(stage=HOOK_NORMALISE)  # after every view exists (the degraded one included)
def daytime_norm_factory(cfg: Any, split: str, train: bool) -> DaytimeNormHook | None:
    """Active with ``data.options.daytime_norm=true`` on nuscenes / robotcar."""
    if cfg.data.dataset not in DAYTIME_NORM or not cfg.data.options.get("daytime_norm", False):
        return None
    return DaytimeNormHook(DAYTIME_NORM[cfg.data.dataset], train)
