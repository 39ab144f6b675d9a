"""Relative-depth prior for ACDepth's ordinal guidance (OGD): ``ctx.provide("depth_prior")``.

See docs/methods.md § ACDepth. Sources (``providers.depth_prior.source``):

* ``teacher`` (default, weight-free): the frozen teacher's clean-frame scaled inverse depth at scale 0,
  divided by its per-image median → relative inverse depth. With this source OGD carries no knowledge the
  teacher lacks: its ordinal labels repeat L_d's own target (docs/methods.md § ACDepth says what OGD then
  reduces to).
* ``depth_anything``: Depth Anything V2 (``transformers.DepthAnythingForDepthEstimation``) loaded from
  the LOCAL directory ``providers.depth_prior.path`` (nothing is downloaded). As ACDepth's code, it sees
  the raw clean frame resized to 322×574 (``input_size``; an empty list rounds each side to the nearest
  multiple of 14 instead) and its relative disparity is bilinearly resized back to the training resolution.
  Input normalisation (``normalise``): we default to ``imagenet`` (DAv2's own training statistics);
  ACDepth's code used md4all's day statistics (``md4all_day``: mean 0.4130 / std 0.2093), kept as an option.
  The prior is NOT inverted: it is a disparity.
* ``oracle``: an ORACLE stand-in for a foundation model on the embedded world, built from the batch's GT
  depth (needs ``data.load_depth_gt=true``): ordinal but not metric — ``(1/D)^γ`` (a monotone non-linear
  transform), computed at 1/``oracle_downsample`` of the training resolution and upsampled back (a foundation
  model's blur across edges), optional smooth multiplicative noise, divided by its per-image median plus a
  constant shift (affine ambiguity; sky, GT 0, gets the shift alone: the farthest value). It is labelled
  *oracle* in the logs, the recipes and the benchmark rows: it shows what OGD does given a good prior and is
  never a method result.
* ``true_depth``: 1/GT itself (needs ``data.load_depth_gt``). ORACLE — ablations only.

All sources give a :class:`RelativeDepthPrior`: ``disparity`` B×1×H×W (larger = closer) and ``valid``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustdepth.config import ConfigError
from robustdepth.providers.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

log = logging.getLogger(__name__)

SOURCES = ("teacher", "depth_anything", "oracle", "true_depth")
ORACLE_SOURCES = ("oracle", "true_depth")
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "md4all_day": ((0.4130,) * 3, (0.2093,) * 3),  # what ACDepth's code fed DAv2 (nuScenes day statistics)
    "robotcar_day": ((0.5758,) * 3, (0.319,) * 3),  # the same rule with RobotCar's day statistics
    "none": None,
}


@dataclass
class DepthPriorConfig(ProviderConfig):
    # teacher (default, weight-free) | depth_anything | oracle / true_depth (ORACLES from GT, never a method result)
    source: str = "teacher"
    path: Any = None  # local directory of a DepthAnythingForDepthEstimation model (source=depth_anything)
    normalise: str = "imagenet"  # DAv2 input statistics: imagenet | md4all_day (ACDepth code) | robotcar_day | none
    # DAv2 input (height, width): ACDepth's code resizes every frame to 322×574. Empty = round each side of the
    # training resolution to the nearest multiple of `multiple` (the ViT patch) instead.
    input_size: list[int] = field(default_factory=lambda: [322, 574])
    multiple: int = 14
    # source=oracle: s = (1/D)^gamma at 1/oracle_downsample resolution, × exp(oracle_noise·N) (smooth), then
    # divided by its per-image median and shifted by oracle_shift (sky → oracle_shift, the farthest value).
    oracle_gamma: float = 0.5
    oracle_downsample: int = 4
    oracle_noise: float = 0.0
    oracle_shift: float = 0.1


@dataclass
class RelativeDepthPrior:
    """Relative inverse depth (B×1×H×W, larger = closer, arbitrary scale) and where it is valid."""

    disparity: Tensor
    valid: Tensor
    source: str


def nearest_multiple(size: int, multiple: int) -> int:
    """``size`` rounded to the nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, round(size / multiple) * multiple)


def dav2_input_size(cfg: Any, height: int, width: int) -> tuple[int, int]:
    """The (H, W) Depth Anything sees: ``cfg.input_size`` (ACDepth: 322×574) or the nearest multiples of 14."""
    if cfg.input_size:
        return int(cfg.input_size[0]), int(cfg.input_size[1])
    return nearest_multiple(height, cfg.multiple), nearest_multiple(width, cfg.multiple)


def oracle_disparity(depth_gt: Tensor, size: tuple[int, int], gamma: float = 0.5, downsample: int = 4,
                     noise: float = 0.0, shift: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """A foundation-model-like relative disparity from GT depth (B×1×Hg×Wg metres, 0 = invalid/sky).

    ``(1/D)^gamma`` (monotone, non-linear: ratios are compressed for gamma < 1, so θ-thresholded labels differ
    from metric ones), area-averaged to ``size // downsample`` and bilinearly upsampled to ``size``,
    multiplied by ``exp(noise·N(0, 1))`` drawn at the reduced resolution, divided by its per-image median over
    valid pixels and shifted by ``shift``. Orders every pair of distinct depths like GT up to the blur and noise.
    """
    valid = (depth_gt > 0) & torch.isfinite(depth_gt)
    disp = torch.where(valid, depth_gt.clamp_min(1e-6).reciprocal().pow(gamma), torch.zeros_like(depth_gt))
    low = (max(1, size[0] // max(1, downsample)), max(1, size[1] // max(1, downsample)))
    disp = F.interpolate(disp.float(), size=low, mode="area")
    if noise > 0:
        n = torch.randn(disp.shape, generator=generator).to(disp.device)
        disp = disp * torch.exp(noise * n)
    disp = F.interpolate(disp, size=size, mode="bilinear", align_corners=False)
    flat = disp.flatten(1)
    medians = torch.stack([row[row > 0].median() if bool((row > 0).any()) else row.new_ones(())
                           for row in flat])
    return disp / medians.clamp_min(1e-12).view(-1, 1, 1, 1) + shift


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

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        if cfg.source not in SOURCES:
            raise ConfigError(f"providers.depth_prior.source={cfg.source!r}: use one of {SOURCES}")
        if cfg.normalise not in NORMALISATIONS:
            raise ConfigError(f"providers.depth_prior.normalise={cfg.normalise!r}: use one of {tuple(NORMALISATIONS)}")
        if cfg.input_size and len(cfg.input_size) != 2:
            raise ConfigError(f"providers.depth_prior.input_size={list(cfg.input_size)}: give [height, width] or []")
        if cfg.source in ORACLE_SOURCES:
            if not root_cfg.data.load_depth_gt:
                raise ConfigError(f"providers.depth_prior.source={cfg.source} (ORACLE) needs data.load_depth_gt=true")
            if cfg.oracle_downsample < 1 or cfg.oracle_gamma <= 0 or cfg.oracle_noise < 0:
                raise ConfigError("providers.depth_prior: oracle_downsample must be >= 1, oracle_gamma > 0, "
                                  "oracle_noise >= 0")

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        self.model = load_depth_anything(cfg.path) if cfg.source == "depth_anything" else None
        if cfg.source in ORACLE_SOURCES:
            log.warning("depth_prior: source=%s is an ORACLE built from ground-truth depth — it shows what OGD "
                        "does given a good prior, never a method result", cfg.source)
        self.eval()

    def train(self, mode: bool = True) -> DepthPrior:
        return super().train(False)  # the prior model is frozen

    def forward(self, ctx: StepContext) -> RelativeDepthPrior:
        if self.cfg.source == "teacher":
            disp = median_normalised(ctx.provide("teacher").scaled_disp(0))
            return RelativeDepthPrior(disp, torch.ones_like(disp, dtype=torch.bool), "teacher")
        if self.cfg.source == "true_depth":
            return self._true_depth(ctx)
        if self.cfg.source == "oracle":
            return self._oracle(ctx)
        return self._depth_anything(ctx)

    @torch.no_grad()
    def _depth_anything(self, ctx: StepContext) -> RelativeDepthPrior:
        image = ctx.color(0)  # the raw clean frame: DAv2 applies its own normalisation below
        height, width = image.shape[-2:]
        size = dav2_input_size(self.cfg, height, width)
        x = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        stats = NORMALISATIONS[self.cfg.normalise]
        if stats is not None:
            mean, std = (torch.tensor(s, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for s in stats)
            x = (x - mean) / std
        out = self.model(pixel_values=x).predicted_depth  # type: ignore[misc]
        disp = F.interpolate(out[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)
        return RelativeDepthPrior(disp, disp > 0, "depth_anything")

    def _depth_gt(self, ctx: StepContext) -> Tensor:
        if "depth_gt" not in ctx.batch:
            raise KeyError(f"depth_prior source={self.cfg.source} needs batch['depth_gt'] (data.load_depth_gt=true)")
        return ctx.batch["depth_gt"].float().to(ctx.device)

    @torch.no_grad()
    def _oracle(self, ctx: StepContext) -> RelativeDepthPrior:
        cfg = self.cfg
        size = tuple(ctx.color(0).shape[-2:])
        disp = oracle_disparity(self._depth_gt(ctx), size, cfg.oracle_gamma, cfg.oracle_downsample,  # type: ignore[arg-type]
                                cfg.oracle_noise, cfg.oracle_shift, ctx.generator)
        return RelativeDepthPrior(disp, torch.ones_like(disp, dtype=torch.bool), "oracle (from GT)")

    @torch.no_grad()
    def _true_depth(self, ctx: StepContext) -> RelativeDepthPrior:
        gt = self._depth_gt(ctx)
        size = ctx.color(0).shape[-2:]
        if gt.shape[-2:] != size:
            gt = F.interpolate(gt, size=size, mode="nearest")
        valid = (gt > 0) & torch.isfinite(gt)
        disp = torch.where(valid, 1.0 / gt.clamp_min(1e-6), torch.zeros_like(gt))
        return RelativeDepthPrior(disp, valid, "true_depth (ORACLE)")


__all__ = ["DepthPrior", "DepthPriorConfig", "RelativeDepthPrior", "dav2_input_size", "load_depth_anything",
           "nearest_multiple", "oracle_disparity"]
