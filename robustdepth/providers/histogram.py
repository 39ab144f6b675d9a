"""Syn2Real's day-clear depth-histogram prior: P^day, the depth distribution a day-clear model predicts
over the day-clear training set, with the same soft binning the KL loss uses (docs/methods.md § Syn2Real-RA).
This module holds the binning and the file format; the prior is computed from a checkpoint by
:func:`robustdepth.training.day_histogram.compute_day_histogram` (it builds the model's full training config).

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

import torch
from torch import Tensor

from robustdepth.config import ConfigError

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


__all__ = ["DAY_CLEAR", "DEFAULT_BINS", "DEFAULT_RANGE", "HISTOGRAM_FORMAT", "depth_bin_centres",
           "normalise_histogram", "soft_histogram"]
