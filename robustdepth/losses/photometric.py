"""Monodepth2's self-supervised photometric loss and its building blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from robustdepth.geometry import Camera, Pose, warp
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.similarity import (
    compiled_photometric_errors,
    photometric_errors,
)

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


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
        errors_of = compiled_photometric_errors() if ctx.cfg.train.compile_loss else photometric_errors
        identity = None
        noise = None
        if cfg.automask:
            identity = ctx.memo("identity_error", lambda: by_source(
                errors_of(torch.cat([ctx.color(f) for f in sources]), target, cfg.ssim_alpha), len(sources), 1)[0])
            noise = torch.randn(identity.shape, generator=ctx.generator, device="cpu").to(identity) \
                * cfg.automask_noise
        # every (scale, source) reconstruction in one warp and one error call: scale-major rows
        depths = [ctx.depth_full(cfg.view, scale) for scale in ctx.scales]
        errors = errors_of(reconstruct_all(ctx, sources, depths), target, cfg.ssim_alpha)
        per_scale = by_source(errors, len(sources), len(depths))
        total = torch.zeros((), device=ctx.device)
        masked = 0.0
        for reprojection in per_scale:
            if cfg.min_reprojection:
                per_pixel, mask = min_reprojection(reprojection, identity, noise)
            else:
                per_pixel, mask = reprojection.mean(1, keepdim=True), torch.ones_like(reprojection[:, :1]).bool()
            total = total + per_pixel.mean()
            masked += float(mask.float().mean())
        n = len(ctx.scales)
        return total / n, {"automask_kept": masked / n}


def reconstruct_all(ctx: StepContext, sources: list[int], depths: list[torch.Tensor]) -> torch.Tensor:
    """``ctx.reconstruct(f, d)`` for every depth d and source f in ONE warp: rows (depth, source, batch).

    Images, poses and intrinsics are tiled to match; one projection and one ``grid_sample`` replace
    len(depths)·len(sources) small ones (each row is computed exactly as its own call would).
    """
    batch = depths[0].shape[0]
    n, s = len(depths), len(sources)
    images = torch.cat([ctx.color(f) for f in sources]).repeat(n, 1, 1, 1)
    depth = torch.cat([d.repeat(s, 1, 1, 1) for d in depths])
    poses = torch.cat([ctx.pose(f).matrix.expand(batch, 4, 4) for f in sources]).repeat(n, 1, 1)
    K = ctx.camera(0).K.expand(batch, 3, 3).repeat(n * s, 1, 1)
    return warp(images, depth, Pose(poses), Camera(K))


def by_source(errors: torch.Tensor, sources: int, groups: int) -> list[torch.Tensor]:
    """Split (group, source, batch)-ordered G·S·B×1×H×W errors into G maps of B×S×H×W (sources as channels)."""
    stacked = errors.squeeze(1).unflatten(0, (groups, sources, -1))  # G×S×B×H×W
    return [g.transpose(0, 1) for g in stacked]
