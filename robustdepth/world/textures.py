"""Band-limited procedural textures evaluated at surface coordinates (metres, world-anchored).

Every function takes the pixel's footprint on the surface (metres per pixel, from ray differentials) and
removes detail finer than about two pixels: noise octaves fade out as their frequency nears Nyquist and
periodic patterns (bricks, tiles, windows, lane dashes) are box-filtered analytically. Without this the
texture shimmers from frame to frame and the photometric warp between frames breaks (see DESIGN.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_MASK = 0x7FFFFFFF


def hash2(ix: Tensor, iy: Tensor, seed: int | Tensor) -> Tensor:
    """Integer lattice hash → uniform float32 in [0, 1); deterministic on every platform."""
    h = (ix * 374_761_393 + iy * 668_265_263 + seed * 1_442_695_041) & _MASK
    h = ((h ^ (h >> 13)) * 1_274_126_177) & _MASK
    h = h ^ (h >> 16)
    return (h & 0xFFFF).to(torch.float32) / 65536.0


_TABLE_SIZE = 256
_MAX_OCTAVES = 8


def _noise_table() -> Tensor:
    """Random lattice values, one 256×256 tile per octave (+1 wrap row/column), fixed for all worlds."""
    rng = np.random.default_rng(20_240_521)
    table = rng.random((_MAX_OCTAVES, _TABLE_SIZE, _TABLE_SIZE), dtype=np.float32)
    table = np.concatenate([table, table[:, :1]], axis=1)
    table = np.concatenate([table, table[:, :, :1]], axis=2)
    return torch.from_numpy(table).unsqueeze(1)  # O×1×257×257


_TABLE = _noise_table()


def _seed_offset(seed: int | Tensor, salt: float) -> Tensor | float:
    """Per-seed shift of the lattice (different surfaces get different noise), in lattice units."""
    return torch.frac(torch.as_tensor(seed, dtype=torch.float64) * salt).to(torch.float32) * _TABLE_SIZE


def _smooth_lattice(x: Tensor) -> Tensor:
    """Wrap to the tile and replace linear interpolation by smoothstep (value noise without lattice creases)."""
    x = torch.remainder(x, _TABLE_SIZE)
    base = torch.floor(x)
    f = x - base
    return base + f * f * (3 - 2 * f)


def value_noise_octaves(u: Tensor, v: Tensor, seed: int | Tensor, f: Tensor, where: Tensor) -> Tensor:
    """Value noise in [0, 1] at several frequencies (one ``grid_sample`` per octave over its own random tile).

    u, v: N; f: k×N (or k×1) frequencies; ``where``: k×N bool, the entries to compute; returns k×N with 0.5
    (the noise's mean) elsewhere. Each entry's value does not depend on which others are computed.
    """
    k = f.shape[0]
    if k > _MAX_OCTAVES:
        raise ValueError(f"at most {_MAX_OCTAVES} octaves, got {k}")
    n = u.shape[0]
    f = f.expand(k, n)
    ou = torch.as_tensor(_seed_offset(seed, 0.6180339887)).expand(n)
    ov = torch.as_tensor(_seed_offset(seed, 0.7548776662)).expand(n)
    out = torch.full((k, n), 0.5)
    for octave in range(k):
        i = where[octave].nonzero().squeeze(1)
        if i.numel() == 0:
            continue
        # index_select, not x[i]: the same values, several times faster on CPU (this loop is the world's
        # hottest gather)
        fk = f[octave].index_select(0, i)
        uv = torch.stack([u.index_select(0, i) * fk + ou.index_select(0, i),
                          v.index_select(0, i) * fk + ov.index_select(0, i)], -1)
        grid = _smooth_lattice(uv) * (2.0 / _TABLE_SIZE) - 1.0  # align_corners=True on 257 samples
        sample = torch.nn.functional.grid_sample(_TABLE[octave:octave + 1], grid.view(1, 1, -1, 2), mode="bilinear",
                                                 align_corners=True)
        out[octave].index_copy_(0, i, sample.view(-1))
    return out


def fbm(u: Tensor, v: Tensor, footprint: Tensor, seed: int | Tensor, base_frequency: float | Tensor = 1.0,
        octaves: int = 5, gain: float = 0.55) -> Tensor:
    """Fractal value noise centred on 0.5, each octave faded out before it can alias.

    An octave of frequency f (cycles per metre) is kept fully while f·footprint < 0.15 and removed by
    f·footprint = 0.35 (value noise carries energy somewhat above its lattice frequency, hence the margin).
    Removing an octave leaves its mean (0.5), so brightness does not change with distance. Faded-out
    octaves are not sampled at all (on a driving frame most fine octaves are, beyond a few metres).
    """
    amps = torch.tensor([gain**k for k in range(octaves)], dtype=u.dtype).unsqueeze(1)
    f = torch.as_tensor(base_frequency, dtype=u.dtype) * torch.tensor([2.0**k for k in range(octaves)]).reshape(
        -1, *([1] * u.ndim))
    f = f.expand(octaves, *u.shape)
    weight = ((0.35 - f * footprint.unsqueeze(0)) / 0.2).clamp(0, 1)
    noise = value_noise_octaves(u, v, seed, f, where=weight > 0)
    return 0.5 + (amps * weight * (noise - 0.5)).sum(0) / float(amps.sum())


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
    lo_t, hi_t = torch.as_tensor(lo, dtype=x.dtype), torch.as_tensor(hi, dtype=x.dtype)
    upper = torch.minimum(torch.maximum(x + f / 2, lo_t), hi_t)
    lower = torch.minimum(torch.maximum(x - f / 2, lo_t), hi_t)
    return (upper - lower) / f
