"""The embedded all-weather world on disk (written by ``robustdepth world generate``).

Layout (the interface; see ``robustdepth.world``)::

    ROOT/world.json
    ROOT/<split>/<sequence>/intrinsics.txt            3×3 K in pixels at the stored resolution
    ROOT/<split>/<sequence>/poses.txt                 camera-to-world 3×4 per line (x right, y down, z fwd)
    ROOT/<split>/<sequence>/meta.json                 seed, speeds, static flags, conditions, severities
    ROOT/<split>/<sequence>/<condition>/image/000000.png
    ROOT/<split>/<sequence>/<condition>/depth/000000.npy   float32 metres along the optical axis, 0 = sky
    ROOT/<split>/<sequence>/objects/000000.png        uint16 object id, 0 = sky/none
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from robustdepth.data.base import DataError, FrameSequence, parse_intrinsics, read_depth


class WorldSequence(FrameSequence):
    """One rendered trajectory, available in several conditions (pixel-aligned)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"{folder.parent.name}/{folder.name}"
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"world sequence {folder} has no meta.json (is it a world root made by "
                            "'robustdepth world generate'?)")
        self.meta = json.loads(meta_path.read_text())
        self.conditions = list(self.meta.get("conditions") or
                               sorted(p.name for p in folder.iterdir() if (p / "image").is_dir()))

    @cached_property
    def _frame_count(self) -> int:
        if "num_frames" in self.meta:
            return int(self.meta["num_frames"])
        return len(list((self.folder / self.conditions[0] / "image").glob("*.png")))

    @property
    def num_frames(self) -> int:
        return self._frame_count

    def image_path(self, index: int, condition: str) -> Path:
        if condition not in self.conditions:
            raise DataError(f"condition {condition!r} not rendered for {self.folder}; available: {self.conditions}")
        return self.folder / condition / "image" / f"{index:06d}.png"

    @cached_property
    def _K(self) -> np.ndarray:
        return parse_intrinsics(self.folder / "intrinsics.txt", f"world sequence {self.folder}")

    def intrinsics(self) -> np.ndarray:
        return self._K

    def depth_gt(self, index: int, condition: str) -> np.ndarray:
        return read_depth(self.folder / condition / "depth" / f"{index:06d}.npy")

    def object_ids(self, index: int) -> np.ndarray:
        path = self.folder / "objects" / f"{index:06d}.png"
        if not path.is_file():
            raise DataError(f"object id map not found: {path}")
        with Image.open(path) as img:
            return np.asarray(img, dtype=np.int64)

    @cached_property
    def _poses(self) -> np.ndarray:
        path = self.folder / "poses.txt"
        if not path.is_file():
            raise DataError(f"poses not found: {path}")
        rows = np.loadtxt(path, dtype=np.float64).reshape(-1, 12)
        poses = np.tile(np.eye(4), (len(rows), 1, 1))
        poses[:, :3, :4] = rows.reshape(-1, 3, 4)
        return poses

    def pose(self, index: int) -> np.ndarray:
        return self._poses[index]


def generate_command(root: Path, info: dict) -> str:
    """The command that (re)writes the world described by ``world.json`` contents ``info`` into ``root``."""
    preset, seed = info.get("preset", "small"), info.get("seed", 0)
    return f"robustdepth world generate --preset {preset} --seed {seed} --out {root}"


def check_world_complete(root: Path) -> None:
    """Refuse a world whose generation was interrupted (``world.json`` says ``"complete": false``), naming the
    command that completes it; a training or evaluation run on it would silently use a subset."""
    try:
        info = json.loads((root / "world.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{root / 'world.json'} is unreadable ({' '.join(str(err).split())}); regenerate the "
                        f"world with 'robustdepth world generate --preset PRESET --out {root}'") from None
    if not isinstance(info, dict):
        raise DataError(f"{root / 'world.json'} is not a world description (a JSON object)")
    if info.get("complete") is False:
        raise DataError(f"world {root} is incomplete (its generation was interrupted: world.json has "
                        f"\"complete\": false); complete it with '{generate_command(root, info)}'")


def world_sequences(root: Path, split: str) -> list[WorldSequence]:
    """The sequences of one split of a world root."""
    if not (root / "world.json").is_file():
        raise DataError(f"{root} is not a world root (no world.json); make one with "
                        f"'robustdepth world generate --preset small --out {root}'")
    check_world_complete(root)
    split_dir = root / split
    if not split_dir.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"world root {root} has no split {split!r}; splits: {have}")
    return [WorldSequence(p) for p in sorted(split_dir.iterdir()) if p.is_dir()]
