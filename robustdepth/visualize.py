"""Colour maps and panels (matplotlib's magma, Monodepth2's normalisation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors


def colorize_disparity(disp: np.ndarray, vmax_percentile: float = 95.0) -> np.ndarray:
    """H×W disparity → H×W×3 uint8, magma, normalised from min to the 95th percentile (Monodepth2)."""
    disp = np.asarray(disp, dtype=np.float32)
    vmax = float(np.percentile(disp, vmax_percentile))
    vmin = float(disp.min())
    norm = mcolors.Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6)
    rgba = matplotlib.colormaps["magma"](norm(disp))
    return (rgba[..., :3] * 255).astype(np.uint8)


def colorize_depth(depth: np.ndarray, vmax_percentile: float = 95.0) -> np.ndarray:
    """Depth shown as its inverse (near = bright), as depth papers do; 0 = invalid (e.g. sky) stays black.

    The normalisation (min to 95th percentile of the disparity) uses valid pixels only, so large
    invalid areas do not wash the colours out.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = depth > 0
    rgb = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if valid.any():
        disp = 1.0 / depth[valid]
        vmin, vmax = float(disp.min()), float(np.percentile(disp, vmax_percentile))
        norm = mcolors.Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6)
        rgb[valid] = (matplotlib.colormaps["magma"](norm(disp))[..., :3] * 255).astype(np.uint8)
    return rgb


def save_panel(rows: Sequence[Sequence[np.ndarray]], out: Path, titles: Sequence[Sequence[str]] | None = None,
               row_labels: Sequence[str] | None = None, width_inches: float = 4.0) -> Path:
    """A grid of H×W×3 uint8 images with optional titles; written as PNG."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    h, w = rows[0][0].shape[:2]
    size = (width_inches * n_cols, (width_inches * h / w + 0.4) * n_rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=size, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row):
                ax.imshow(row[j])
                if titles is not None and j < len(titles[i]):
                    ax.set_title(titles[i][j], fontsize=9)
        if row_labels is not None:
            axes[i][0].text(-0.02, 0.5, row_labels[i], transform=axes[i][0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
