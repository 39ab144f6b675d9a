"""Syn2Real's day-clear depth-histogram prior: P^day, the depth distribution a day-clear model predicts
over the day-clear training set, with the same soft binning the KL loss uses (docs/methods.md § Syn2Real-RA).

Stored as JSON (format ``robustdepth-depth-histogram/1``): ``bins``, ``min_depth``, ``max_depth``
(bin centres = linspace(min, max, bins)), ``probabilities`` (normalised as the loss does), ``counts``,
and provenance (``checkpoint``, ``frames``, ``split``, ``conditions``). The paper does not say how its prior
file was made; we pool the frozen model's scale-0 depth over every DAY-CLEAR TRAINING frame (UNSPECIFIED
choice): the dataset is built as for training (``train=True``: its training filters, e.g. nuScenes' static
filter, apply) with only the day-clear condition (:data:`DAY_CLEAR`), no flip, no degradation, no masks.
An evaluation build (``train=False``) would be wrong twice: empty ``eval_conditions`` mean every
condition (rain and night frames in a "day-clear" prior), and training filters are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from robustdepth.config import ConfigError, apply_overrides
from robustdepth.networks import disp_to_depth
from robustdepth.priors.teacher import load_frozen

HISTOGRAM_FORMAT = "robustdepth-depth-histogram/1"
DEFAULT_BINS = 257  # Syn2Real nuScenes (RobotCar: 101)
DEFAULT_RANGE = (3.5, 80.0)  # Syn2Real's bin range in metres
#: Each dataset's day-clear condition label; other datasets keep their own data.train_conditions.
DAY_CLEAR = {"nuscenes": ["day-clear"], "robotcar": ["day"], "world": ["clear"]}


def depth_bin_centres(bins: int, lo: float, hi: float) -> Tensor:
    """Syn2Real's bin centres μ_n = linspace(lo, hi, N) (width L = (hi − lo)/(N − 1))."""
    if bins < 2 or not 0 <= lo < hi:
        raise ConfigError(f"histogram needs bins >= 2 and 0 <= lo < hi, got bins={bins}, range=({lo}, {hi})")
    return torch.linspace(lo, hi, bins)


def soft_histogram(depth: Tensor, bins: int, lo: float, hi: float, chunk: int = 16384) -> Tensor:
    """Differentiable depth histogram h_n = Σ_p [sig((D_p − (μ_n − L/2))/(L/2)) − sig((D_p − (μ_n + L/2))/(L/2))].

    Vectorised over bins (the official loop over 257 bins is slow); pixels are processed in chunks so
    memory stays at chunk × bins. Returns the un-normalised counts (N,).
    """
    centres = depth_bin_centres(bins, lo, hi).to(depth)
    half = (hi - lo) / (bins - 1) / 2
    values = depth.reshape(-1)
    counts = torch.zeros(bins, device=depth.device, dtype=depth.dtype)
    for start in range(0, values.numel(), chunk):
        d = values[start:start + chunk, None]
        counts = counts + (torch.sigmoid((d - (centres - half)) / half)
                           - torch.sigmoid((d - (centres + half)) / half)).sum(0)
    return counts


def normalise_histogram(counts: Tensor, eps: float = 1e-7) -> Tensor:
    """P = (h + ε) / Σ(h + ε), Syn2Real's normalisation (ε keeps log P finite)."""
    counts = counts + eps
    return counts / counts.sum()


def day_clear_overrides(cfg: Any) -> list[str]:
    """Overrides that turn a config's data section into its day-clear training set, as read for P^day."""
    conditions = DAY_CLEAR.get(str(cfg.data.dataset), list(cfg.data.train_conditions))
    return [f"data.train_conditions=[{','.join(conditions)}]", "augment.flip_p=0.0", "degrade.mode=none",
            "degrade.rules=[]", "providers.masks.enabled=false"]


@torch.no_grad()
def compute_day_histogram(checkpoint: str | Path, out: str | Path, bins: int = DEFAULT_BINS,
                          min_depth: float = DEFAULT_RANGE[0], max_depth: float = DEFAULT_RANGE[1],
                          overrides: list[str] | None = None, split: str | None = None, max_frames: int = 0,
                          batch_size: int = 8) -> Path:
    """Run the frozen model of ``checkpoint`` on every day-clear training frame and store P^day.

    The data section is the checkpoint's own (the set it was trained on) unless ``overrides`` change it;
    then :func:`day_clear_overrides` restricts it to day-clear frames with the training filters applied.
    """
    from robustdepth.data import build_dataset
    from robustdepth.data.base import DataError

    depth_net, _, cfg = load_frozen(checkpoint)
    cfg = apply_overrides(cfg, list(overrides or []))
    cfg = apply_overrides(cfg, day_clear_overrides(cfg))
    split = split or cfg.data.train_split
    dataset = build_dataset(cfg, split, train=True)
    if len(dataset) == 0:
        raise DataError(f"split {split!r} of {cfg.data.root} has no day-clear training frames "
                        f"({list(cfg.data.train_conditions)}) to build a depth histogram from")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    counts = torch.zeros(bins, dtype=torch.float64)
    frames = 0
    limit = max_frames or len(dataset)
    for batch in loader:
        images = batch[("color", 0)][: limit - frames]
        disp = depth_net(images).disp[0]
        depth = disp_to_depth(disp, cfg.model.min_depth, cfg.model.max_depth)[1]
        counts += soft_histogram(depth, bins, min_depth, max_depth).double()
        frames += images.shape[0]
        if frames >= limit:
            break
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": HISTOGRAM_FORMAT, "bins": bins, "min_depth": min_depth, "max_depth": max_depth,
        "probabilities": normalise_histogram(counts).tolist(), "counts": counts.tolist(),
        "checkpoint": str(checkpoint), "split": split, "frames": frames, "data_root": str(cfg.data.root),
        "conditions": list(cfg.data.train_conditions), "filters": "training (train=True)",
        "note": "soft histogram of the model's scale-0 depth (Syn2Real binning), pooled over the split",
    }
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(out)
    return out


__all__ = ["DAY_CLEAR", "DEFAULT_BINS", "DEFAULT_RANGE", "HISTOGRAM_FORMAT", "compute_day_histogram",
           "day_clear_overrides", "depth_bin_centres", "normalise_histogram", "soft_histogram"]
