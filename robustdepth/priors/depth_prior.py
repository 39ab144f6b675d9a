"""Relative-depth prior for ACDepth's ordinal guidance (OGD): ``ctx.provide("depth_prior")``.

Sources (``providers.depth_prior.source``):

* ``teacher`` (default, weight-free): the frozen teacher's clean-frame scaled inverse depth at scale 0,
  divided by its per-image median → relative inverse depth.
* ``depth_anything``: Depth Anything V2 (``transformers.DepthAnythingForDepthEstimation``) loaded from
  the LOCAL directory ``providers.depth_prior.path`` (nothing is downloaded). As ACDepth's code, it sees
  the clean frame resized to the nearest multiples of 14 (320×576 → 322×574) and its relative disparity is
  bilinearly resized back to the training resolution. Input normalisation (``normalise``): we default to
  ``imagenet`` (DAv2's own training statistics); ACDepth's code used md4all's day statistics
  (``md4all_day``: mean 0.4130 / std 0.2093), kept as an option. The prior is NOT inverted: it is a disparity.
* ``true_depth``: the world's ground truth (1/GT, needs ``data.load_depth_gt``). ORACLE — ablations only:
  it is labelled as such in the logs and must never be reported as a method result.

All sources give a :class:`RelativeDepthPrior`: ``disparity`` B×1×H×W (larger = closer) and ``valid``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustdepth.config import ConfigError
from robustdepth.priors.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

log = logging.getLogger(__name__)

SOURCES = ("teacher", "depth_anything", "true_depth")
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "md4all_day": ((0.4130,) * 3, (0.2093,) * 3),  # what ACDepth's code fed DAv2 (nuScenes day statistics)
    "none": None,
}


@dataclass
class DepthPriorConfig(ProviderConfig):
    source: str = "teacher"  # teacher (default, weight-free) | depth_anything | true_depth (ORACLE, ablation only)
    path: Any = None  # local directory of a DepthAnythingForDepthEstimation model (source=depth_anything)
    normalise: str = "imagenet"  # DAv2 input statistics: imagenet | md4all_day (ACDepth code) | none
    multiple: int = 14  # DAv2 input sides are rounded to the nearest multiple of the ViT patch (320×576 → 322×574)


@dataclass
class RelativeDepthPrior:
    """Relative inverse depth (B×1×H×W, larger = closer, arbitrary scale) and where it is valid."""

    disparity: Tensor
    valid: Tensor
    source: str


def nearest_multiple(size: int, multiple: int) -> int:
    return max(multiple, round(size / multiple) * multiple)


def load_depth_anything(path: Any) -> nn.Module:
    """A DepthAnythingForDepthEstimation from a local directory, frozen; clear errors when unavailable."""
    if not path:
        raise ConfigError("providers.depth_prior.source=depth_anything needs providers.depth_prior.path: a local "
                          "directory holding a Depth Anything V2 model (config.json + weights); nothing is downloaded")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"providers.depth_prior.path={folder}: no Depth Anything model there (config.json "
                                "missing); save one with DepthAnythingForDepthEstimation.save_pretrained(DIR)")
    try:
        from transformers import DepthAnythingForDepthEstimation
    except ImportError as err:
        raise ImportError("providers.depth_prior.source=depth_anything needs the transformers package: "
                          "pip install robustdepth[hf]") from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = DepthAnythingForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
    return model.eval().requires_grad_(False)


def median_normalised(disp: Tensor) -> Tensor:
    """Disparity divided by its per-image median: relative, scale-free (ratios are unchanged)."""
    median = disp.flatten(1).median(dim=1).values.clamp_min(1e-12)
    return disp / median.view(-1, 1, 1, 1)


@register_provider
class DepthPrior(Provider):
    """The relative-depth prior OGD ranks against (see module docstring)."""

    name = "depth_prior"
    Config = DepthPriorConfig

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        if cfg.source not in SOURCES:
            raise ConfigError(f"providers.depth_prior.source={cfg.source!r}: use one of {SOURCES}")
        if cfg.normalise not in NORMALISATIONS:
            raise ConfigError(f"providers.depth_prior.normalise={cfg.normalise!r}: use one of {tuple(NORMALISATIONS)}")
        self.model = load_depth_anything(cfg.path) if cfg.source == "depth_anything" else None
        if cfg.source == "true_depth":
            if not root_cfg.data.load_depth_gt:
                raise ConfigError("providers.depth_prior.source=true_depth (ORACLE) needs data.load_depth_gt=true")
            log.warning("depth_prior: source=true_depth is an ORACLE using ground-truth depth — ablation only, "
                        "never a method result")
        self.eval()

    def train(self, mode: bool = True) -> DepthPrior:
        return super().train(False)  # the prior model is frozen

    def forward(self, ctx: StepContext) -> RelativeDepthPrior:
        if self.cfg.source == "teacher":
            disp = median_normalised(ctx.provide("teacher").scaled_disp(0))
            return RelativeDepthPrior(disp, torch.ones_like(disp, dtype=torch.bool), "teacher")
        if self.cfg.source == "true_depth":
            return self._true_depth(ctx)
        return self._depth_anything(ctx)

    @torch.no_grad()
    def _depth_anything(self, ctx: StepContext) -> RelativeDepthPrior:
        image = ctx.image("clean")
        height, width = image.shape[-2:]
        size = (nearest_multiple(height, self.cfg.multiple), nearest_multiple(width, self.cfg.multiple))
        x = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        stats = NORMALISATIONS[self.cfg.normalise]
        if stats is not None:
            mean, std = (torch.tensor(s, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for s in stats)
            x = (x - mean) / std
        out = self.model(pixel_values=x).predicted_depth  # type: ignore[misc]
        disp = F.interpolate(out[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)
        return RelativeDepthPrior(disp, disp > 0, "depth_anything")

    @torch.no_grad()
    def _true_depth(self, ctx: StepContext) -> RelativeDepthPrior:
        if "depth_gt" not in ctx.batch:
            raise KeyError("depth_prior source=true_depth needs batch['depth_gt'] (data.load_depth_gt=true)")
        gt = ctx.batch["depth_gt"].float()
        size = ctx.image("clean").shape[-2:]
        if gt.shape[-2:] != size:
            gt = F.interpolate(gt, size=size, mode="nearest")
        valid = (gt > 0) & torch.isfinite(gt)
        disp = torch.where(valid, 1.0 / gt.clamp_min(1e-6), torch.zeros_like(gt))
        return RelativeDepthPrior(disp, valid, "true_depth (ORACLE)")


__all__ = ["DepthPrior", "DepthPriorConfig", "RelativeDepthPrior", "load_depth_anything", "nearest_multiple"]
