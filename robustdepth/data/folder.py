"""A generic sequence folder: ordered images + intrinsics, optional GT depth — for users' own data.

Layout (one sequence, or one per sub-folder)::

    ROOT/                        ROOT/
      intrinsics.txt               seq_a/intrinsics.txt, seq_a/000000.png, …
      000000.png 000001.png …      seq_b/…
      depth/000000.npy  (optional: float metres, or 16-bit PNG = metres × 256)

``intrinsics.txt`` holds the 3×3 K in pixels of the stored images (or ``fx fy cx cy``); instead
of a file, ``data.intrinsics=[fx, fy, cx, cy]`` may give it (e.g. for a read-only folder).
Frames are ordered by file name. Every split uses every frame (point ``data.root`` at different
folders for training and testing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.data.base import DataError, FrameSequence, parse_intrinsics, read_depth

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
DEPTH_SUFFIXES = (".npy", ".png")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FolderSequence(FrameSequence):
    """One folder of ordered frames."""

    def __init__(self, folder: Path, K: np.ndarray, condition: str = "clear") -> None:
        self.folder = folder
        self.name = folder.name
        self.frames = list_images(folder)
        self._K = K
        self.condition = condition

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def image_path(self, index: int, condition: str) -> Path:
        return self.frames[index]

    def intrinsics(self) -> np.ndarray:
        return self._K

    def depth_gt(self, index: int, condition: str) -> np.ndarray | None:
        stem = self.frames[index].stem
        for suffix in DEPTH_SUFFIXES:
            path = self.folder / "depth" / f"{stem}{suffix}"
            if path.is_file():
                return read_depth(path)
        return None


def folder_sequences(root: Path, intrinsics: Any = None, condition: str = "clear") -> list[FolderSequence]:
    """The sequences under ``root`` (itself, or each sub-folder holding images)."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder")
    folders = [root] if list_images(root) else sorted(p for p in root.iterdir() if p.is_dir() and list_images(p))
    if not folders:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or its sub-folders")
    sequences = []
    for folder in folders:
        source = intrinsics if intrinsics is not None else folder / "intrinsics.txt"
        if intrinsics is None and not Path(source).is_file():
            raise DataError(f"no intrinsics for {folder}: add {folder / 'intrinsics.txt'} (3×3 K in pixels "
                            "or 'fx fy cx cy') or set data.intrinsics=[fx,fy,cx,cy]")
        sequences.append(FolderSequence(folder, parse_intrinsics(source, f"sequence {folder}"), condition))
    return sequences
