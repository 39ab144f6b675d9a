"""The degradations gallery: each image-space translator at a few severities next to the world's own rendering.

One row per translator: the clear frame, the translation at each severity, and — when the world's physically
rendered version of the same condition is given — that frame, so a reader sees both the resemblance and the gap
(the synthetic-to-real gap the robust methods must bridge).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # object API: no pyplot state, no backend switching

from robustdepth.degrade.translators import CONDITIONS, translate

# Names the world (or other datasets) may use for a condition → the translator that imitates it.
WORLD_ALIASES: dict[str, str] = {"day-rain": "rain", "day_rain": "rain", "dense_fog": "fog", "night-clear": "night"}


def _check_uint8_image(name: str, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name} must be an H×W×3 uint8 array, got shape {shape} and dtype {dtype}")


def _world_by_condition(world_conditions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map the world's condition names onto translator names (aliases allowed); unknown names raise."""
    mapped: dict[str, np.ndarray] = {}
    for key, image in world_conditions.items():
        condition = WORLD_ALIASES.get(key, key)
        if condition not in CONDITIONS:
            raise ValueError(f"world condition {key!r} has no translator; valid: {', '.join(CONDITIONS)} "
                             f"(aliases: {', '.join(WORLD_ALIASES)})")
        _check_uint8_image(f"world_conditions[{key!r}]", image)
        mapped[condition] = image
    return mapped


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def degradation_gallery(clear: np.ndarray, world_conditions: Mapping[str, np.ndarray],
                        out_png: str | os.PathLike[str], severities: Sequence[float] = (0.3, 0.6, 1.0),
                        depth: np.ndarray | None = None, conditions: Sequence[str] | None = None,
                        seed: int = 0) -> Path:
    """Render the gallery to ``out_png`` and return its path.

    Args:
        clear: the clear frame, ``H×W×3`` uint8.
        world_conditions: the world's physically rendered versions of the same frame, keyed by condition
            (``night``, ``rain``/``day-rain``, ``fog``, ``snow``, …), each ``H×W×3`` uint8; may be empty.
        out_png: output image path (parent folders are created).
        severities: translator severities shown left to right, each in [0, 1].
        depth: optional ``H×W`` depth in metres predicted by a teacher (never the world's true depth), used by
            the depth-aware translators (fog, rain haze, snow haze).
        conditions: the translators to show (default: all of :data:`CONDITIONS`, weather first).
        seed: seed of the translators' random fields, so the gallery is reproducible.
    """
    _check_uint8_image("clear", clear)
    world = _world_by_condition(world_conditions)
    rows = list(conditions) if conditions is not None else list(CONDITIONS)
    unknown = [c for c in rows if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown gallery conditions {unknown}; valid: {', '.join(CONDITIONS)}")
    depth_tensor = None
    if depth is not None:
        if depth.ndim != 2:
            raise ValueError(f"depth must be an H×W array in metres, got shape {depth.shape}")
        depth_tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]

    image = _to_tensor(clear)
    columns = ["clear", *(f"severity {s:g}" for s in severities), "world render"]
    height, width = clear.shape[:2]
    panel_w = 3.2
    panel_h = panel_w * height / width
    fig = Figure(figsize=(panel_w * len(columns), (panel_h + 0.25) * len(rows)))
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, condition in enumerate(rows):
        panels: list[np.ndarray | None] = [clear]
        for severity in severities:
            generator = torch.Generator().manual_seed(seed)
            panels.append(_to_uint8(translate(image, condition, float(severity), generator, depth_tensor)))
        panels.append(world.get(condition))
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.set_facecolor("0.9")
                ax.text(0.5, 0.5, "no world render", ha="center", va="center", fontsize=8, color="0.4",
                        transform=ax.transAxes)
            else:
                ax.imshow(panel)
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r][0].set_ylabel(condition, fontsize=10)
    fig.suptitle("Image-space translators (robustdepth.degrade) vs. the world's physically rendered conditions",
                 fontsize=10)
    fig.tight_layout()
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def gallery_from_world(root: str | os.PathLike[str], out_png: str | os.PathLike[str], split: str = "test",
                       sequence: str | None = None, frame: int = 0,
                       severities: Sequence[float] = (0.3, 0.6, 1.0)) -> Path:
    """Gallery of one frame of a generated world (``ROOT/<split>/<seq>/<condition>/image/<frame>.png``).

    The clear image is translated; every other condition folder present is shown as the world's rendering.
    The world's true depth is deliberately NOT given to the translators (they use their image-position prior).
    """
    base = Path(root) / split
    if not base.is_dir():
        raise FileNotFoundError(f"world split folder not found: {base}")
    sequences = sorted(p for p in base.iterdir() if p.is_dir())
    if sequence is not None:
        sequences = [base / sequence]
    if not sequences or not sequences[0].is_dir():
        raise FileNotFoundError(f"no sequence folder {sequence or '*'} under {base}")
    folder = sequences[0]
    name = f"{frame:06d}.png"
    clear_path = folder / "clear" / "image" / name
    if not clear_path.is_file():
        raise FileNotFoundError(f"clear frame not found: {clear_path}")
    world = {}
    for condition_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in ("clear", "objects")):
        image_path = condition_dir / "image" / name
        if image_path.is_file():
            world[condition_dir.name] = _read_rgb(image_path)
    return degradation_gallery(_read_rgb(clear_path), world, out_png, severities=severities)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m robustdepth.degrade.gallery --world ROOT --out docs/degradations.png``."""
    import argparse

    parser = argparse.ArgumentParser(description="Render the degradations gallery from a generated world frame.")
    parser.add_argument("--world", required=True, type=Path, help="world root (robustdepth.world.generate)")
    parser.add_argument("--out", default=Path("docs/degradations.png"), type=Path, help="output PNG")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sequence", default=None, help="sequence folder (default: the first)")
    parser.add_argument("--frame", default=0, type=int)
    args = parser.parse_args(argv)
    path = gallery_from_world(args.world, args.out, args.split, args.sequence, args.frame)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
