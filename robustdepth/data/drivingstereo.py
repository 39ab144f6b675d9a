"""DrivingStereo weather subsets (sunny, cloudy, rainy, foggy; 500 frames each) for zero-shot evaluation.

Layout (the "different weathers" download, as WeatherDepth's ``datasets/drivingstereo_dataset.py``
reads it; file names as in the split lists, e.g. ``2018-08-17-09-45-58_2018-08-17-10-11-16-157.png``)::

    ROOT/<weather>/left-image-full-size/<name>.png   (or .jpg)  1762×800 left image
    ROOT/<weather>/depth-map-full-size/<name>.png              uint16 depth × 256, 0 = no GT

Frames: every image of the folder, or only those of ``data.options.splits_dir/<weather>/test_files.txt``
(Robust-Depth's lists, one file name per line). Intrinsics: evaluation never uses K (zero-shot,
per-image median scaling), so unless ``data.options.intrinsics`` = [fx, fy, cx, cy] gives the real one,
a PLACEHOLDER pinhole (f = image width, centred principal point of 1762×800) fills the sample's K slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.data.registry import register_dataset
from robustdepth.data.base import DataError, FrameItem, FrameSequence, parse_intrinsics, read_depth

WEATHERS = ("sunny", "cloudy", "rainy", "foggy")
IMAGE_DIR = "left-image-full-size"
DEPTH_DIR = "depth-map-full-size"
IMAGE_SUFFIXES = (".png", ".jpg")
# Placeholder K (f = width, centred) for the 1762×800 frames: NOT DrivingStereo's calibration; unused by evaluation.
PLACEHOLDER_K = (1762.0, 1762.0, 881.0, 400.0)
DRIVINGSTEREO_OPTIONS = ("splits_dir", "intrinsics")


class DrivingStereoWeather(FrameSequence):
    """The frames of one weather subset (independent stills: no temporal neighbours are used)."""

    def __init__(self, root: Path, weather: str, names: list[str], K: np.ndarray) -> None:
        self.root, self.weather, self.names, self._K = root, weather, names, K
        self.name = weather

    @property
    def num_frames(self) -> int:
        return len(self.names)

    def image_path(self, index: int, condition: str) -> Path:
        return self.root / self.weather / IMAGE_DIR / self.names[index]

    def intrinsics(self) -> np.ndarray:
        return self._K

    def depth_path(self, index: int) -> Path:
        return self.root / self.weather / DEPTH_DIR / f"{Path(self.names[index]).stem}.png"

    def depth_gt(self, index: int, condition: str) -> np.ndarray:
        return read_depth(self.depth_path(index))


def weather_names(root: Path, weather: str, splits_dir: Path | None) -> list[str]:
    """Image file names of a subset: the split list if given, else every image in the folder."""
    folder = root / weather / IMAGE_DIR
    if splits_dir is not None:
        path = splits_dir / weather / "test_files.txt"
        if not path.is_file():
            raise DataError(f"DrivingStereo split list not found: {path}")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{len(missing)} frame(s) of {path} missing in {folder}, e.g. {folder / missing[0]}")
        return names
    if not folder.is_dir():
        raise DataError(f"DrivingStereo folder not found: {folder}")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@register_dataset("drivingstereo", options=DRIVINGSTEREO_OPTIONS)
def _drivingstereo_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    if train:
        raise DataError("drivingstereo is an evaluation-only (zero-shot) dataset; train on kitti/nuscenes/robotcar")
    root = Path(data.root)
    options = dict(data.options)
    splits_dir = Path(options["splits_dir"]) if options.get("splits_dir") else None
    K = parse_intrinsics(options.get("intrinsics", PLACEHOLDER_K), "data.options.intrinsics")
    weathers = list(data.eval_conditions) or [w for w in WEATHERS if (root / w / IMAGE_DIR).is_dir()]
    bad = [w for w in weathers if w not in WEATHERS]
    if bad or not weathers:
        raise DataError(f"DrivingStereo weathers {bad or weathers} not found under {root}; valid: {list(WEATHERS)}")
    items = []
    for weather in weathers:
        seq = DrivingStereoWeather(root, weather, weather_names(root, weather, splits_dir), K)
        items += [FrameItem(seq, i, weather) for i in range(seq.num_frames)]
    return items
