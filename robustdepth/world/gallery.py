"""A gallery PNG of one world frame: every condition, its depth and the object ids, to look at."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from robustdepth.visualize import colorize_depth


def colorize_ids(ids: np.ndarray) -> np.ndarray:
    """Object ids → distinct colours (golden-ratio hues), id 0 black."""
    hue = (ids.astype(np.float64) * 0.6180339887) % 1.0
    sat = 0.55 + 0.4 * ((ids * 7919) % 5) / 4
    hsv = np.stack([hue, sat, np.full_like(hue, 0.95)], -1)
    rgb = matplotlib.colors.hsv_to_rgb(hsv)
    rgb[ids == 0] = 0
    return (rgb * 255).astype(np.uint8)


def _pick_sequence(root: Path, split: str, sequence: str | None) -> Path:
    split_dir = root / split
    if not split_dir.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"world root {root} has no split {split!r} (found: {have})")
    names = sorted(p.name for p in split_dir.iterdir() if (p / "meta.json").is_file())
    if not names:
        raise FileNotFoundError(f"no sequences in {split_dir}")
    name = sequence or names[0]
    if name not in names:
        raise FileNotFoundError(f"sequence {name!r} not in {split_dir}; available: {', '.join(names)}")
    return split_dir / name


def show(root: Path, out: Path | None = None, split: str = "test", sequence: str | None = None,
         frame: int | None = None) -> Path:
    """Write a gallery (rows = conditions; columns = image, depth, object ids) and return its path."""
    root = Path(root)
    if not (root / "world.json").is_file():
        raise FileNotFoundError(f"{root} is not a world root (no world.json); make one with "
                                "'robustdepth world generate'")
    folder = _pick_sequence(root, split, sequence)
    meta = json.loads((folder / "meta.json").read_text())
    n = int(meta["num_frames"])
    index = n // 2 if frame is None else frame
    if not 0 <= index < n:
        raise IndexError(f"frame {index} out of range 0..{n - 1} for {folder}")
    conditions = meta["conditions"]
    ids = np.asarray(Image.open(folder / "objects" / f"{index:06d}.png"))
    height, width = ids.shape
    panel_w = 6.4  # inches at 100 dpi: 640 px per panel whatever the stored resolution
    fig, axes = plt.subplots(len(conditions), 3, squeeze=False,
                             figsize=(3 * panel_w, len(conditions) * (panel_w * height / width + 0.35)))
    for row, cond in enumerate(conditions):
        image = np.asarray(Image.open(folder / cond / "image" / f"{index:06d}.png").convert("RGB"))
        depth = np.load(folder / cond / "depth" / f"{index:06d}.npy")
        sev = meta["severity"].get(cond, 0.0)
        panels = [(image, f"{cond} (severity {sev:.2f})"),
                  (colorize_depth(depth), f"depth ({depth[depth > 0].min():.1f}–{depth.max():.0f} m)"),
                  (colorize_ids(ids), f"object ids ({len(np.unique(ids))})")]
        for col, (img, title) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{root.name}: {split}/{folder.name} frame {index}", fontsize=9)
    fig.tight_layout()
    out = Path(out) if out is not None else root / "gallery.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
