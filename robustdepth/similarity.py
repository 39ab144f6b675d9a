"""Per-pixel photometric dissimilarity — 0.85·(1 − SSIM)/2 + 0.15·|x − y| (Monodepth2) — shared by the
photometric loss (:mod:`robustdepth.losses.photometric`) and RoSAMDepth's object reliability
(:mod:`robustdepth.providers.rosam`). Pure tensor functions; the batched path computes the target's statistics
once for several predictions of one target."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def _ordered_window_sum(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Σ over the 3×3 offsets (i, j) of ``plane[..., i:i+height, j:j+width]``, added row by row, left to right,
    starting from the first term: the order avg_pool2d's CPU kernel sums a window in (and, on the zero-padded
    gradient, the order its backward accumulates into an input pixel)."""
    total = plane[..., 0:height, 0:width]
    for i in range(3):
        for j in range(3):
            if i or j:
                total = total + plane[..., i:i + height, j:j + width]
    return total


class _Box3(torch.autograd.Function):
    """3×3 mean filter (stride 1, no padding): ``F.avg_pool2d(x, 3, 1)`` bit for bit, value and gradient.

    Both passes are shifted-view sums in avg_pool2d's own accumulation order (:func:`_ordered_window_sum`),
    so they round exactly as the pool does (tests/test_photometric_fused.py pins it). On CPU avg_pool2d is a
    scalar loop per output pixel; the shifted-view sums are vectorised elementwise adds (speed:
    docs/results/speed.md). The backward is written out rather than left to autograd, whose nine slice
    gradients would each allocate and zero-fill a full-size buffer.
    """

    @staticmethod
    def forward(ctx: Any, plane: torch.Tensor) -> torch.Tensor:
        height, width = plane.shape[-2] - 2, plane.shape[-1] - 2
        if height < 1 or width < 1:
            raise ValueError(f"a 3×3 mean filter needs maps of at least 3×3 pixels, got {tuple(plane.shape)}")
        return _ordered_window_sum(plane, height, width) / 9

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        height, width = grad.shape[-2] + 2, grad.shape[-1] + 2
        return _ordered_window_sum(F.pad(grad / 9, (2, 2, 2, 2)), height, width)


def _box3(plane: torch.Tensor) -> torch.Tensor:
    """3×3 mean filter (stride 1, no padding) of one map (:class:`_Box3`)."""
    return _Box3.apply(plane)


def _pool3(planes: list[torch.Tensor]) -> list[torch.Tensor]:
    """3×3 mean filter (stride 1, no padding) of each map (:func:`_box3`)."""
    return [_box3(p) for p in planes]


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


__all__ = ["compiled_photometric_errors", "photometric_error", "photometric_errors", "ssim_dissimilarity"]
