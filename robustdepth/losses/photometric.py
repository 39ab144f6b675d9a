"""Monodepth2's self-supervised photometric loss and its building blocks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from robustdepth.geometry import Camera, Pose, warp
from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def _pool3(planes: list[torch.Tensor]) -> list[torch.Tensor]:
    """3×3 mean filter (stride 1, no padding) of each map.

    One ``avg_pool2d`` per map: stacking the maps into one call ran slower on CPU when tried (the
    concatenation's copy costs more than the saved dispatches).
    """
    return [F.avg_pool2d(p, 3, 1) for p in planes]


def _ssim_from_moments(mu_x: torch.Tensor, mu_y: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor,
                       xy: torch.Tensor) -> torch.Tensor:
    """(1 − SSIM)/2 clamped to [0, 1] from the local means of x, y, x², y², x·y."""
    sigma_x = xx - mu_x**2
    sigma_y = yy - mu_y**2
    sigma_xy = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * sigma_xy + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (sigma_x + sigma_y + _SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Monodepth2's SSIM term: (1 − SSIM)/2 per pixel and channel, 3×3 mean filter, reflection padding.

    Reflection padding copies values, so the products are formed on the padded maps.
    """
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    return _ssim_from_moments(*_pool3([x, y, x * x, y * y, x * y]))


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_alpha: float = 0.85) -> torch.Tensor:
    """pe = α·(1 − SSIM)/2 + (1 − α)·L1, averaged over channels: B×1×H×W."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if ssim_alpha == 0:
        return l1
    return ssim_alpha * ssim_dissimilarity(pred, target).mean(1, keepdim=True) + (1 - ssim_alpha) * l1


def photometric_errors(preds: torch.Tensor, target: torch.Tensor, ssim_alpha: float = 0.85) -> torch.Tensor:
    """:func:`photometric_error` of K predictions of ONE target at once: K·B×C×H×W → K·B×1×H×W.

    ``preds`` stacks K images, each compared with the B×C×H×W ``target`` (row k·B + b against target row
    b). The target's padding, local mean and second moment are computed once for all K instead of K times
    (two of the five 3×3 filters per call); the predictions are then taken one B-image set at a time, so the
    temporaries stay cache-sized. Equal to K calls of :func:`photometric_error` up to float rounding
    (tests/test_photometric_fused.py pins it against the previous implementation).
    """
    batch = target.shape[0]
    if preds.shape[0] % batch or preds.shape[1:] != target.shape[1:]:
        raise ValueError(f"preds {tuple(preds.shape)} must stack K copies of target's shape {tuple(target.shape)}")
    if ssim_alpha == 0:
        return torch.cat([(target - p).abs().mean(1, keepdim=True) for p in preds.split(batch)])
    y = F.pad(target, (1, 1, 1, 1), mode="reflect")
    mu_y, yy = _pool3([y, y * y])
    # one prediction set at a time: B-image temporaries stay in cache (one K·B-sized pass measured slower)
    return torch.cat([_error_against(p, target, y, mu_y, yy, ssim_alpha) for p in preds.split(batch)])


def _error_against(pred: torch.Tensor, target: torch.Tensor, y: torch.Tensor, mu_y: torch.Tensor,
                   yy: torch.Tensor, ssim_alpha: float) -> torch.Tensor:
    """:func:`photometric_error` given the padded target ``y`` and its local moments ``mu_y``, ``yy``."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    x = F.pad(pred, (1, 1, 1, 1), mode="reflect")
    mu_x, xx, xy = _pool3([x, x * x, x * y])
    ssim = _ssim_from_moments(mu_x, mu_y, xx, yy, xy)
    return ssim_alpha * ssim.mean(1, keepdim=True) + (1 - ssim_alpha) * l1


@functools.cache
def compiled_photometric_errors() -> Callable[..., torch.Tensor]:
    """:func:`photometric_errors` through ``torch.compile`` (the loss term's ``train.compile_loss`` path).

    Opt-in: the fused kernel rounds differently from eager at the 1e-7 level, so the default path stays the
    eager function. Built once per process, on first use.
    """
    return torch.compile(photometric_errors, dynamic=False)


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
