"""Monodepth2's self-supervised photometric loss and its building blocks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Monodepth2's SSIM term: (1 − SSIM)/2 per pixel and channel, 3×3 mean filter, reflection padding."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * sigma_xy + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (sigma_x + sigma_y + _SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_alpha: float = 0.85) -> torch.Tensor:
    """pe = α·(1 − SSIM)/2 + (1 − α)·L1, averaged over channels: B×1×H×W."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if ssim_alpha == 0:
        return l1
    return ssim_alpha * ssim_dissimilarity(pred, target).mean(1, keepdim=True) + (1 - ssim_alpha) * l1


@functools.cache
def compiled_photometric_error() -> Callable[..., torch.Tensor]:
    """:func:`photometric_error` through ``torch.compile`` (one fused SSIM + L1 kernel per shape).

    Opt-in (``train.compile_loss``): the fused kernel rounds differently from eager at the 1e-7 level,
    so the default path stays the eager function. Built once per process, on first use.
    """
    return torch.compile(photometric_error, dynamic=False)


def min_reprojection(reprojection: torch.Tensor, identity: torch.Tensor | None,
                     noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over sources, with Monodepth2's auto-masking.

    ``reprojection``/``identity`` are B×S×H×W errors of warped / un-warped sources. Identity
    errors (plus tiny noise that breaks ties, 1e-5 in Monodepth2) join the minimum, so pixels
    where a static source already explains the target — a static camera, objects moving with us —
    select an identity error and give no gradient. Returns (per-pixel loss, automask) where the
    mask is True where a warped source won.
    """
    if identity is None:
        loss, _ = reprojection.min(dim=1, keepdim=True)
        return loss, torch.ones_like(loss, dtype=torch.bool)
    if noise is not None:
        identity = identity + noise
    combined = torch.cat([identity, reprojection], dim=1)
    loss, idx = combined.min(dim=1, keepdim=True)
    return loss, idx >= identity.shape[1]


@dataclass
class PhotometricConfig(TermConfig):
    weight: float = 1.0
    ssim_alpha: float = 0.85  # weight of the SSIM term (Monodepth2: 0.85)
    automask: bool = True  # identity-reprojection auto-masking
    min_reprojection: bool = True  # per-pixel minimum over sources (False: average, the MD2 ablation)
    automask_noise: float = 1e-5
    view: str = "input"  # which network pass's depth is supervised (input = the student's input)


@register_loss
class PhotometricLoss(LossTerm):
    """Multi-scale minimum reprojection loss on the *clean* frames (Monodepth2; md4all's rule).

    Each scale's disparity is upsampled to the input resolution; the clean source frames are warped
    into the clean target with the depth, the pose network's poses and K; the result is averaged
    over scales.
    """

    name = "photometric"
    Config = PhotometricConfig
    needs_pose = True

    def forward(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        target = ctx.color(0)
        sources = ctx.source_ids
        error = compiled_photometric_error() if ctx.cfg.train.compile_loss else photometric_error
        identity = None
        noise = None
        if cfg.automask:
            identity = ctx.memo("identity_error", lambda: torch.cat(
                [error(ctx.color(f), target, cfg.ssim_alpha) for f in sources], 1))
            noise = torch.randn(identity.shape, generator=ctx.generator, device="cpu").to(identity) \
                * cfg.automask_noise
        total = torch.zeros((), device=ctx.device)
        masked = 0.0
        for scale in ctx.scales:
            depth = ctx.depth_full(cfg.view, scale)
            errors = [error(ctx.reconstruct(f, depth), target, cfg.ssim_alpha) for f in sources]
            reprojection = torch.cat(errors, 1)
            if cfg.min_reprojection:
                per_pixel, mask = min_reprojection(reprojection, identity, noise)
            else:
                per_pixel, mask = reprojection.mean(1, keepdim=True), torch.ones_like(reprojection[:, :1]).bool()
            total = total + per_pixel.mean()
            masked += float(mask.float().mean())
        n = len(ctx.scales)
        return total / n, {"automask_kept": masked / n}
