"""Syn2Real's P^day computed from a frozen day-clear model: a chain stage of the Syn2Real / RoSAMDepth pipeline.

The binning and the file format are :mod:`robustdepth.providers.histogram` (the KL loss reads them); this module
builds the model's own training config (its data section, restricted to day-clear frames) and pools the model's
scale-0 depth over that set (the choices are in the format module's docstring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from robustdepth.checkpoint import load_checkpoint
from robustdepth.configure import apply_overrides, config_from_dict
from robustdepth.networks import disp_to_depth
from robustdepth.providers.histogram import (
    DAY_CLEAR,
    DEFAULT_BINS,
    DEFAULT_RANGE,
    HISTOGRAM_FORMAT,
    normalise_histogram,
    soft_histogram,
)
from robustdepth.providers.teacher import load_frozen


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
    from robustdepth.data.base import DataError, color_key

    depth_net, _, _ = load_frozen(checkpoint)
    cfg = config_from_dict(load_checkpoint(checkpoint)["config"], strict=False)  # the model's own training set
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
        images = batch[color_key(0)][: limit - frames]
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


__all__ = ["compute_day_histogram", "day_clear_overrides"]
