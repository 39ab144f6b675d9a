"""The previous (unfused) photometric loss: the independent reference for the fused path.

These are the per-call implementations the fused path (``robustdepth.similarity.photometric_errors``,
``robustdepth.losses.photometric``) replaced — five separate 3×3 mean filters per SSIM call, one error call per
(scale, source), one warp per (scale, source) through ``ctx.reconstruct`` — kept as the independent reference
that the equivalence test (tests/test_photometric_fused.py) and the photometric timing
(benchmarks/profile_step.py ``--photometric-rounds``) compare against.

Contract: :func:`reference_loss` returns the same value and gradients as ``PhotometricLoss.forward`` to float
rounding; it draws the auto-masking noise from ``ctx.generator`` with the same shape as the fused term (reseed
the generator to compare the two), and shares nothing with the fused path except ``min_reprojection`` and the
step context (colours, depths, the ``reconstruct`` warp). :func:`reference_ssim` and :func:`reference_error`
match ``ssim_dissimilarity`` and ``photometric_error`` per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from robustdepth.losses.photometric import min_reprojection
from robustdepth.training.context import StepContext

__all__ = ["PREVIOUS_STEP_PATHS", "previous_step_paths", "reference_error", "reference_loss", "reference_ssim"]


def reference_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The previous SSIM: pad, then five separate 3×3 mean filters."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + 0.01**2) * (2 * sigma_xy + 0.03**2)
    den = (mu_x**2 + mu_y**2 + 0.01**2) * (sigma_x + sigma_y + 0.03**2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def reference_error(pred: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if alpha == 0:
        return l1
    return alpha * reference_ssim(pred, target).mean(1, keepdim=True) + (1 - alpha) * l1


def reference_loss(ctx: StepContext, cfg: Any) -> torch.Tensor:
    """The previous PhotometricLoss.forward: one warp and one error call per (scale, source)."""
    target, sources = ctx.color(0), ctx.source_ids
    identity = noise = None
    if cfg.automask:
        identity = torch.cat([reference_error(ctx.color(f), target, cfg.ssim_alpha) for f in sources], 1)
        noise = torch.randn(identity.shape, generator=ctx.generator) * cfg.automask_noise
    total = torch.zeros(())
    for scale in ctx.scales:
        depth = ctx.depth_full(cfg.view, scale)
        reprojection = torch.cat([reference_error(ctx.reconstruct(f, depth), target, cfg.ssim_alpha)
                                  for f in sources], 1)
        if cfg.min_reprojection:
            per_pixel, _ = min_reprojection(reprojection, identity, noise)
        else:
            per_pixel = reprojection.mean(1, keepdim=True)
        total = total + per_pixel.mean()
    return total / len(ctx.scales)


PREVIOUS_STEP_PATHS = (
    "Previous: the SSIM's 3×3 means through `F.avg_pool2d` (a scalar loop per pixel on CPU), the decoder's reflection "
    "pads through autocast's fp32 round trip, the unclipped gradient norm through `clip_grad_norm_` (which still "
    "multiplies every gradient by 1.0) and autocast's weight casts once per network call; current: shifted-view sums "
    "in the pool's own order (bit-identical value and gradient), pads in the activation's dtype (bit-identical "
    "forward), the norm alone (bit-identical) and each trained weight cast once per step (same loss; the pose "
    "net's two calls add their gradients in bf16).")


@contextmanager
def previous_step_paths() -> Iterator[None]:
    """Within the block, a training step runs the paths the current ones replaced, for before/after timings
    (benchmarks/profile_step.py ``--step-paths-rounds``): the SSIM's 3×3 means through ``F.avg_pool2d``, the
    depth decoder's reflection pads through autocast's fp32 round trip, the unclipped gradient norm through
    ``clip_grad_norm_`` with an infinite bound (a multiply of every gradient by 1.0), and autocast's weight
    casts per network call instead of once per step. Each gives the same loss values as its current path
    (tests pin it; the per-call casts' gradients differ only by where the two pose calls' bf16 gradients
    are added), so what differs is the time."""
    from robustdepth import similarity
    from robustdepth.networks import depth_decoder
    from robustdepth.training import trainer

    def pooled(plane: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(plane, 3, 1)

    def round_trip(self: depth_decoder.Conv3x3, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))

    def scaled_by_one(models: torch.nn.Module, grad_clip: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(models.parameters(), grad_clip if grad_clip > 0 else float("inf"))

    def per_call(self: StepContext) -> Any:
        return nullcontext()

    saved = similarity._box3, depth_decoder.Conv3x3.forward, trainer.gradient_norm, StepContext.weight_casts
    similarity._box3, depth_decoder.Conv3x3.forward = pooled, round_trip  # type: ignore[method-assign]
    trainer.gradient_norm, StepContext.weight_casts = scaled_by_one, per_call  # type: ignore[method-assign]
    try:
        yield
    finally:
        (similarity._box3, depth_decoder.Conv3x3.forward, trainer.gradient_norm,  # type: ignore[method-assign]
         StepContext.weight_casts) = saved
