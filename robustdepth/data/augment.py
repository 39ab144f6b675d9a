"""Photometric augmentation of the network input (torchvision ColorJitter semantics, in plain torch).

Monodepth2 samples one set of jitter parameters per training sample and applies it to every frame
of that sample; losses are computed on the un-jittered frames. Parameters are drawn from a
per-sample generator so that a resumed run sees exactly the same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.color import hsv_to_rgb, rgb_to_hsv

_GRAY = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as torchvision


@dataclass(frozen=True)
class JitterParams:
    """One draw of ColorJitter: factors and the order in which the four ops run."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    order: tuple[int, ...]


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def sample_jitter(gen: torch.Generator, brightness: float, contrast: float, saturation: float,
                  hue: float) -> JitterParams:
    """Draw factors like torchvision's ``ColorJitter.get_params`` (factor ranges [1-x, 1+x], hue [-h, h])."""
    order = tuple(int(i) for i in torch.randperm(4, generator=gen))
    return JitterParams(
        brightness=_uniform(gen, max(0.0, 1 - brightness), 1 + brightness),
        contrast=_uniform(gen, max(0.0, 1 - contrast), 1 + contrast),
        saturation=_uniform(gen, max(0.0, 1 - saturation), 1 + saturation),
        hue=_uniform(gen, -hue, hue),
        order=order,
    )


def _grayscale(img: torch.Tensor) -> torch.Tensor:
    weights = _GRAY.to(img.device, img.dtype).view(3, 1, 1)
    return (img * weights).sum(dim=-3, keepdim=True)


def _blend(img: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * img + (1.0 - factor) * other).clamp(0.0, 1.0)


def _adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate hue by ``shift`` turns (torchvision's hue_factor)."""
    hsv = rgb_to_hsv(img.unsqueeze(0) if img.dim() == 3 else img)
    two_pi = 2 * torch.pi
    h = torch.remainder(hsv[:, :1] + shift * two_pi, two_pi)
    out = hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1)).clamp(0.0, 1.0)
    return out.squeeze(0) if img.dim() == 3 else out


def apply_jitter(img: torch.Tensor, p: JitterParams) -> torch.Tensor:
    """Apply one jitter draw to a 3×H×W (or B×3×H×W) image in [0, 1]."""
    for op in p.order:
        if op == 0:
            img = (img * p.brightness).clamp(0.0, 1.0)
        elif op == 1:
            mean = _grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
            img = _blend(img, mean, p.contrast)
        elif op == 2:
            img = _blend(img, _grayscale(img), p.saturation)
        elif p.hue != 0.0:
            img = _adjust_hue(img, p.hue)
    return img


def add_noise(img: torch.Tensor, gen: torch.Generator, mean: float, std: float) -> torch.Tensor:
    """md4all's input noise: ``img + mean + std * N(0, 1)``, clamped to [0, 1]."""
    noise = torch.randn(img.shape, generator=gen, dtype=img.dtype) * std + mean
    return (img + noise).clamp(0.0, 1.0)
