"""Band-limited procedural textures evaluated at surface coordinates (metres, world-anchored).

Every function takes the pixel's footprint on the surface (metres per pixel, from ray differentials) and
removes detail finer than about two pixels: noise octaves fade out as their frequency nears Nyquist and
periodic patterns (bricks, tiles, windows, lane dashes) are box-filtered analytically. Without this the
texture shimmers from frame to frame and the photometric warp between frames breaks (see DESIGN.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK = 0x7FFFFFFF


def hash2(ix: Tensor, iy: Tensor, seed: int | Tensor) -> Tensor:
    """Integer lattice hash → uniform float32 in [0, 1); deterministic on every platform."""
    h = (ix * 374_761_393 + iy * 668_265_263 + seed * 1_442_695_041) & _MASK
    h = ((h ^ (h >> 13)) * 1_274_126_177) & _MASK
    h = h ^ (h >> 16)
    return (h & 0xFFFF).to(torch.float32) / 65536.0


def value_noise(u: Tensor, v: Tensor, seed: int | Tensor) -> Tensor:
    """Smooth 2-D value noise in [0, 1] with unit lattice spacing."""
    fu, fv = torch.floor(u), torch.floor(v)
    tu, tv = u - fu, v - fv
    tu = tu * tu * (3 - 2 * tu)
    tv = tv * tv * (3 - 2 * tv)
    iu, iv = fu.to(torch.int64), fv.to(torch.int64)
    a = hash2(iu, iv, seed)
    b = hash2(iu + 1, iv, seed)
    c = hash2(iu, iv + 1, seed)
    d = hash2(iu + 1, iv + 1, seed)
    top = a + (b - a) * tu
    bottom = c + (d - c) * tu
    return top + (bottom - top) * tv


def fbm(u: Tensor, v: Tensor, footprint: Tensor, seed: int | Tensor, base_frequency: float | Tensor = 1.0,
        octaves: int = 5, gain: float = 0.55) -> Tensor:
    """Fractal value noise centred on 0.5, each octave faded out before it can alias.

    An octave of frequency f (cycles per metre) is kept fully while f·footprint < 0.15 and removed by
    f·footprint = 0.35 (value noise carries energy somewhat above its lattice frequency, hence the margin).
    Removing an octave leaves its mean (0.5), so brightness does not change with distance.
    """
    out = torch.full_like(u, 0.5)
    amp, total = 0.5, 0.0
    freq = base_frequency
    for k in range(octaves):
        weight = ((0.35 - freq * footprint) / 0.2).clamp(0, 1)
        out = out + amp * weight * (value_noise(u * freq, v * freq, seed + 101 * k) - 0.5)
        total += amp
        amp *= gain
        freq = freq * 2.0
    return 0.5 + (out - 0.5) / total


def _pulse_integral(x: Tensor, period: float | Tensor, width: float | Tensor) -> Tensor:
    cells = torch.floor(x / period)
    return cells * width + torch.minimum(x - cells * period, torch.as_tensor(width, dtype=x.dtype))


def pulse_train(x: Tensor, period: float | Tensor, width: float | Tensor, footprint: Tensor) -> Tensor:
    """Box-filtered coverage of pulses [k·period, k·period + width) over a pixel of size ``footprint``."""
    f = footprint.clamp_min(1e-4)
    return ((_pulse_integral(x + f / 2, period, width) - _pulse_integral(x - f / 2, period, width)) / f).clamp(0, 1)


def lines(x: Tensor, period: float | Tensor, width: float | Tensor, footprint: Tensor) -> Tensor:
    """Coverage of lines of ``width`` centred on multiples of ``period`` (mortar joints, tile grout)."""
    return pulse_train(x + width / 2, period, width, footprint)


def band(x: Tensor, lo: float | Tensor, hi: float | Tensor, footprint: Tensor) -> Tensor:
    """Box-filtered indicator of lo ≤ x < hi (a single stripe, e.g. a lane line)."""
    f = footprint.clamp_min(1e-4)
    return ((x + f / 2).clamp(lo, hi) - (x - f / 2).clamp(lo, hi)) / f
