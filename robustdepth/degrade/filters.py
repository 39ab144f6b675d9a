"""Batched image filters for the translators: OpenCV on CPU tensors, kornia elsewhere (GPU).

On CPU, OpenCV's per-image filters are much faster than the equivalent depthwise ``conv2d`` (kornia's CPU path),
which decides the translators' throughput (docs/results/degrade_speed.md). On other devices kornia keeps
everything on the device. Both paths use reflect-101 borders and Gaussian kernels of
±3σ, so they agree to float precision away from tiny rounding differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F


def _kernel_size(sigma: float) -> int:
    """Odd Gaussian kernel size covering ±3σ."""
    return 2 * math.ceil(3 * sigma) + 1


def _per_image_cv(images: torch.Tensor, fn: Callable[[np.ndarray, int], np.ndarray]) -> torch.Tensor:
    """Apply ``fn(hwc_float32_array, batch_index)`` to each image of a CPU ``B×C×H×W`` tensor with OpenCV."""
    b, c = images.shape[:2]
    arrays = images.detach().to(torch.float32).permute(0, 2, 3, 1).contiguous().numpy()
    first = fn(arrays[0], 0)
    out = np.empty((b, *first.shape[:2], c), dtype=np.float32)
    out[0] = first.reshape(*first.shape[:2], c)
    for i in range(1, b):
        out[i] = fn(arrays[i], i).reshape(*first.shape[:2], c)
    # Returned in channels-last memory order (no copy back); elementwise torch ops accept any strides.
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.dtype)


def _use_cv(images: torch.Tensor) -> bool:
    return images.device.type == "cpu" and not images.requires_grad


def gaussian_blur(images: torch.Tensor, sigma: float | Sequence[float]) -> torch.Tensor:
    """Gaussian blur with one σ (pixels) for the batch or one per image; σ ≤ 0 leaves an image unchanged."""
    b = images.shape[0]
    sigmas = [float(sigma)] * b if isinstance(sigma, (int, float)) else [float(v) for v in sigma]
    if len(sigmas) != b:
        raise ValueError(f"gaussian_blur needs one sigma or {b} sigmas, got {len(sigmas)}")
    if max(sigmas) <= 0:
        return images
    if _use_cv(images):
        def blur_one(array: np.ndarray, i: int) -> np.ndarray:
            if sigmas[i] <= 0:
                return array
            k = _kernel_size(sigmas[i])
            return cv2.GaussianBlur(array, (k, k), sigmas[i], borderType=cv2.BORDER_REFLECT_101)
        return _per_image_cv(images, blur_one)
    k = _kernel_size(max(sigmas))
    sig = torch.tensor(sigmas, dtype=images.dtype, device=images.device).clamp_min(1e-3)
    return kornia.filters.gaussian_blur2d(images, (k, k), torch.stack([sig, sig], dim=1))


def resize(images: torch.Tensor, size: tuple[int, int], cubic: bool = False) -> torch.Tensor:
    """Resize to ``(H, W)``: area averaging when shrinking, bilinear (or bicubic) when enlarging."""
    h, w = size
    shrinking = h <= images.shape[-2] and w <= images.shape[-1]
    if _use_cv(images):
        mode = cv2.INTER_AREA if shrinking else (cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)
        return _per_image_cv(images, lambda a, _i: cv2.resize(a, (w, h), interpolation=mode))
    if shrinking:
        return F.adaptive_avg_pool2d(images, (h, w))
    return F.interpolate(images, size=(h, w), mode="bicubic" if cubic else "bilinear", align_corners=False)


def wide_blur(images: torch.Tensor, factor: int, sigma: float) -> torch.Tensor:
    """A wide, cheap blur (≈ σ·factor pixels): shrink by ``factor``, blur there, enlarge back."""
    h, w = images.shape[-2:]
    small = resize(images, (max(1, h // factor), max(1, w // factor)))
    return resize(gaussian_blur(small, sigma), (h, w))


def motion_blur(images: torch.Tensor, length: int, angles: torch.Tensor) -> torch.Tensor:
    """Uniform linear motion blur of odd ``length`` along one angle (degrees, 90 = vertical) per image."""
    if length < 3 or length % 2 == 0:
        raise ValueError(f"motion blur length must be an odd integer ≥ 3, got {length}")
    angles = angles.detach().to(torch.float32).cpu()
    kernels = kornia.filters.get_motion_kernel2d(length, angles, torch.zeros_like(angles))
    if _use_cv(images):
        kernel_arrays = kernels.numpy()
        return _per_image_cv(
            images, lambda a, i: cv2.filter2D(a, -1, kernel_arrays[i], borderType=cv2.BORDER_REFLECT_101))
    return kornia.filters.filter2d(images, kernels.to(images.device, images.dtype), border_type="reflect")
