"""Lighting and weather rendered with scene knowledge, on top of one shared geometry pass per frame.

clear: sun (shadow-mapped) + sky light. night: low ambient, street lamps and ego headlights with
inverse-square fall-off, lit windows, bloom around light sources, sensor noise. rain: overcast, wet road
reflecting a mirror render of the scene (lamps included), streaks in 3-D in front of the camera
(occluded by the scene), lens blur, haze. fog: Koschmieder's law on the true ray length,
visibility 40–200 m, airlight. snow: horizontal surfaces whitened (tyre tracks stay darker), flakes in
3-D, overcast, low contrast. Because all conditions shade the same cast, depth and ids are identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from robustdepth.world import render as R
from robustdepth.world import scene as S
from robustdepth.world.presets import CONDITIONS
from robustdepth.world.textures import band, fbm

SUN_COLOR = torch.tensor([1.0, 0.94, 0.84])
LAMP_COLOR = torch.tensor([1.0, 0.78, 0.50])
WINDOW_COLOR = torch.tensor([1.0, 0.72, 0.38])


def severities(seed: int) -> dict[str, float]:
    """Per-sequence severity in [0.25, 1] for each adverse condition (clear is 0)."""
    rng = np.random.default_rng(seed + 104_729)
    return {c: (0.0 if c == "clear" else round(float(rng.uniform(0.25, 1.0)), 3)) for c in CONDITIONS}


def condition_parameters(condition: str, severity: float) -> dict[str, float]:
    """Physical parameters derived from a severity (also written to meta.json)."""
    if condition == "fog":
        return {"visibility_m": round(200.0 - 160.0 * severity, 2)}
    if condition == "rain":
        return {"streaks": int(300 + 900 * severity), "haze_visibility_m": round(900 - 600 * severity, 1),
                "lens_blur_px": round(0.4 + 0.9 * severity, 3)}
    if condition == "snow":
        return {"flakes": int(250 + 900 * severity), "cover": round(0.45 + 0.5 * severity, 3),
                "haze_visibility_m": round(700 - 450 * severity, 1)}
    if condition == "night":
        return {"ambient": round(0.012 * (1.2 - 0.7 * severity), 5), "noise_gain": round(0.5 + 1.0 * severity, 3)}
    return {}


@dataclass
class FrameContext:
    """What shading needs about the current frame beyond the surfaces."""

    view: R.PinholeView
    rotation: Tensor   # camera-to-world 3×3
    position: Tensor   # camera centre, world
    frame_seed: int


# --------------------------------------------------------------------------------------------- the sky


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def sky(condition: str, dirs: Tensor, scene: S.Scene, position: Tensor, clouds: bool = True) -> Tensor:
    """Sky radiance for unit directions N×3 (y down); ``clouds=False`` for cheap glossy reflections."""
    up = (-dirs[:, 1]).clamp(-1, 1)
    e = up.clamp_min(0)
    if condition == "clear":
        horizon, zenith = torch.tensor([0.80, 0.86, 0.95]), torch.tensor([0.22, 0.42, 0.85])
        col = horizon + (zenith - horizon) * (e * 2.2).clamp(0, 1).pow(0.6).unsqueeze(-1)
        sun = (dirs @ scene.sun_direction).clamp_min(0)
        col = col + (sun.pow(400) * 20 + sun.pow(16) * 0.35).unsqueeze(-1) * SUN_COLOR
        if not clouds:
            return col
        # clouds on a plane 1 km up (they drift slowly as the camera moves, like real ones)
        h = 1000.0 / e.clamp_min(0.04)
        cu, cv = position[0] + dirs[:, 0] * h, position[2] + dirs[:, 2] * h
        fp = h / (370.0 * e.clamp_min(0.04))
        cloud = fbm(cu * 0.0025, cv * 0.0025, fp * 0.0025, scene.seed % 9973, octaves=5)
        cover = ((cloud - 0.52) / 0.2).clamp(0, 1) * (e > 0).float()
        col = col + (torch.tensor([1.0, 1.0, 1.0]) - col) * (0.85 * cover).unsqueeze(-1)
        return col
    if condition == "night":
        glow = torch.tensor([0.030, 0.024, 0.020]) * (1 - e).pow(4).unsqueeze(-1)
        return torch.tensor([0.004, 0.006, 0.012]) + glow
    if condition == "rain":
        return torch.tensor([0.30, 0.32, 0.35]) * (1.05 - 0.35 * e).unsqueeze(-1)
    if condition == "fog":
        return _airlight("fog").expand(dirs.shape[0], 3).clone()
    return torch.tensor([0.80, 0.82, 0.86]) * (1.05 - 0.25 * e).unsqueeze(-1)  # snow


def _airlight(condition: str) -> Tensor:
    return {"fog": torch.tensor([0.78, 0.80, 0.82]), "rain": torch.tensor([0.32, 0.34, 0.37]),
            "snow": torch.tensor([0.80, 0.82, 0.86]), "night": torch.tensor([0.01, 0.01, 0.012])}.get(
        condition, torch.tensor([0.8, 0.85, 0.9]))


def _reflect(d: Tensor, n: Tensor) -> Tensor:
    return d - 2 * R.dot(d, n).unsqueeze(-1) * n


# ------------------------------------------------------------------------------------------ shadow map


@dataclass
class ShadowMap:
    """Depth from the sun over the whole sequence's street (one per sequence, so shadows do not shimmer)."""

    view: R.OrthoView
    depth: Tensor  # H×W, inf where nothing casts a shadow

    @classmethod
    def build(cls, scene: S.Scene, texel: float = 0.25, lateral_reach: float = 40.0) -> ShadowMap:
        road = scene.road
        keep = torch.ones(len(scene.prims), dtype=torch.bool)
        z = scene.prims.center[:, 2]
        lat = road.lateral(scene.prims.center[:, 0], z)
        keep &= lat.abs() < lateral_reach
        prims = scene.prims.subset(keep)
        forward = -scene.sun_direction
        right = _unit(torch.linalg.cross(forward, torch.tensor([0.0, -1.0, 0.0])))
        up = torch.linalg.cross(forward, right)
        corners = R._corners_world(prims).reshape(-1, 3)
        ground = torch.tensor([[-lateral_reach, 0, scene.z_range[0]], [lateral_reach, 0, scene.z_range[0]],
                               [-lateral_reach, 0, scene.z_range[1]], [lateral_reach, 0, scene.z_range[1]]])
        pts = torch.cat([corners, ground]) if corners.numel() else ground
        a, b, f = pts @ right, pts @ up, pts @ forward
        # snap the map origin to whole texels (a pure function of the scene, not of the frame)
        a0, b0 = math.floor(float(a.min()) / texel) * texel, math.floor(float(b.min()) / texel) * texel
        corner = right * a0 + up * b0 + forward * (float(f.min()) - 5.0)
        width = math.ceil((float(a.max()) - a0) / texel) + 2
        height = math.ceil((float(b.max()) - b0) / texel) + 2
        view = R.OrthoView(right=right, up=up, forward=forward, corner=corner, texel=texel, height=height,
                           width=width)
        hits = R.cast(view, scene, prims, ground=False)
        return cls(view=view, depth=hits.t.reshape(height, width))

    def lit(self, p: Tensor, bias: float = 0.25) -> Tensor:
        """Fraction of sunlight reaching points N×3 (bilinear percentage-closer filtering)."""
        u, v, z = self.view.project(p)
        h, w = self.depth.shape
        u0, v0 = torch.floor(u), torch.floor(v)
        fu, fv = u - u0, v - v0
        out = torch.zeros_like(u)
        for du, dv, wt in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
            ui = (u0 + du).long()
            vi = (v0 + dv).long()
            inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
            d = self.depth[vi.clamp(0, h - 1), ui.clamp(0, w - 1)]
            out = out + wt * ((z - bias <= d) | ~inside).float()
        return out


# ------------------------------------------------------------------------------------------ light terms


def _hemisphere(surf: R.Surface) -> Tensor:
    return 0.55 + 0.45 * (-surf.n[:, 1])


def _on_hits(surf: R.Surface, *lights: Callable[[Tensor, Tensor], Tensor]) -> list[Tensor]:
    """Each ``light(p, n)`` evaluated on the pixels that hit a surface only, zero on the sky (which never uses it):
    the sky is a sizeable part of a street frame, and the local lights are the costliest shading terms."""
    h = surf.hit.nonzero().squeeze(1)
    p, n = R.take(surf.p, h), R.take(surf.n, h)
    return [torch.zeros_like(surf.p).index_copy_(0, h, light(p, n)) for light in lights]


def _lamp_light(p: Tensor, n: Tensor, scene: S.Scene, position: Tensor, intensity: float, max_lamps: int = 8
                ) -> Tensor:
    """Street lamps: point lights aimed downwards, inverse-square fall-off (no shadows), at points ``p`` with
    normals ``n`` (N×3).

    All lamps at once as L×N matrices (one contiguous row per lamp, so every operation streams):
    n·(q − p) = n·q − n·p and |q − p|² = |q|² − 2 p·q + |p|².
    """
    lamps = scene.lamps
    if lamps.numel() == 0:
        return torch.zeros_like(p)
    lamps = lamps[(lamps - position).norm(dim=-1) < 80]
    if lamps.shape[0] > max_lamps:  # the nearest light nearly everything the camera sees (1/d² fall-off)
        lamps = lamps[(lamps - position).norm(dim=-1).argsort()[:max_lamps]]
    if lamps.shape[0] == 0:
        return torch.zeros_like(p)
    pt, nt = p.T.contiguous(), n.T.contiguous()
    lx, ly, lz = lamps[:, 0:1], lamps[:, 1:2], lamps[:, 2:3]
    pq = lx * pt[0] + ly * pt[1] + lz * pt[2]  # summed in the order p @ lamps.T sums
    nq = lx * nt[0] + ly * nt[1] + lz * nt[2]
    d2 = ((lamps * lamps).sum(-1).unsqueeze(1) - 2 * pq + R.dot(p, p)).clamp_min(1e-6)
    inv = torch.rsqrt(d2)
    cos = ((nq - R.dot(n, p)) * inv).clamp_min(0)
    down = (pt[1] - ly) * inv  # lamp → point direction's downward component
    cone = ((down - 0.15) / 0.45).clamp(0, 1)
    # the per-point sum over lamps runs on N×L rows: torch sums a row in its own order, which the world's renders keep
    out = (cos * cone / (d2 + 1.0)).T.contiguous().sum(-1)
    return intensity * out.unsqueeze(-1) * LAMP_COLOR


def _headlights(p: Tensor, n: Tensor, ctx: FrameContext, intensity: float) -> Tensor:
    """Two ego headlight spots ~1 m below and 1.2 m ahead of the camera, slightly dipped, at points ``p``
    with normals ``n`` (N×3)."""
    rot, pos = ctx.rotation, ctx.position
    axis = _unit(rot @ torch.tensor([0.0, 0.06, 1.0]))
    out = torch.zeros(p.shape[0])
    for side in (-0.75, 0.75):
        q = pos + rot @ torch.tensor([side, 0.95, 1.2])
        vec = q - p
        d2 = R.dot(vec, vec)
        inv = torch.rsqrt(d2.clamp_min(1e-6))
        cos = (R.dot(n, vec) * inv).clamp_min(0)
        spot = (((-vec * inv.unsqueeze(-1)) @ axis - 0.91) / 0.07).clamp(0, 1)
        out = out + cos * spot / (d2 + 0.5)
    return intensity * out.unsqueeze(-1) * torch.tensor([1.0, 0.97, 0.9])


def _fresnel(surf: R.Surface, f0: float) -> Tensor:
    cos = (-R.dot(surf.n, _unit(surf.dirs))).clamp(0, 1)
    return f0 + (1 - f0) * (1 - cos).pow(5)


# ------------------------------------------------------------------------------------------ conditions


def shade(condition: str, surf: R.Surface, look: R.Look, scene: S.Scene, ctx: FrameContext, severity: float,
          shadow: ShadowMap | None, reflection: Tensor | None, lamp_light: bool = True) -> Tensor:
    """Linear HDR radiance N×3 of the frame in one condition (before lens/sensor effects).

    ``lamp_light=False`` drops the street lamps' illumination (not their glowing bulbs): the blurred
    low-resolution mirror image for wet-road reflections does not need it.
    """
    unit_dirs = _unit(surf.dirs)
    albedo = look.albedo
    hit = surf.hit.unsqueeze(-1)
    open_sky = (~surf.hit).nonzero().squeeze(1)
    sky_col = torch.zeros_like(surf.p).index_copy_(0, open_sky, sky(condition, R.take(unit_dirs, open_sky), scene,
                                                                    ctx.position))
    glossy = (look.gloss > 0).nonzero().squeeze(1)
    # what glossy surfaces (glass, paint) mirror of the sky
    mirrored = sky(condition, _reflect(R.take(unit_dirs, glossy), R.take(surf.n, glossy)), scene, ctx.position, False)
    sky_refl = torch.zeros_like(surf.p).index_copy_(0, glossy, mirrored)
    if condition == "clear":
        sun = (surf.n @ scene.sun_direction).clamp_min(0)
        lit = shadow.lit(surf.p) if shadow is not None else torch.ones_like(sun)
        light = 3.0 * (sun * lit).unsqueeze(-1) * SUN_COLOR + torch.tensor([0.30, 0.36, 0.46]) * \
            _hemisphere(surf).unsqueeze(-1)
        col = albedo * light + look.gloss.unsqueeze(-1) * sky_refl
    elif condition == "night":
        p = condition_parameters("night", severity)
        light = p["ambient"] * _hemisphere(surf).unsqueeze(-1) * torch.tensor([0.6, 0.7, 1.0])
        lamps, heads = _on_hits(surf, lambda p, n: _lamp_light(p, n, scene, ctx.position, 28.0, max_lamps=6),
                                lambda p, n: _headlights(p, n, ctx, 70.0))
        light = light + lamps + heads
        col = albedo * light + look.lit.unsqueeze(-1) * WINDOW_COLOR * 0.3
        col = col + look.bulb.unsqueeze(-1) * LAMP_COLOR * 12.0
        col = col + look.gloss.unsqueeze(-1) * 0.02 * light
    elif condition == "rain":
        light = torch.tensor([0.24, 0.25, 0.28]) * _hemisphere(surf).unsqueeze(-1)
        if lamp_light:  # lamps are on in the gloom, but daylight dominates: only nearby ones matter
            light = light + _on_hits(surf, lambda p, n: _lamp_light(p, n, scene, ctx.position, 10.0, max_lamps=3))[0]
        ground = (surf.material <= S.GRASS) & surf.hit
        wet_albedo = torch.where(ground.unsqueeze(-1), albedo * 0.45, albedo * 0.8)
        col = wet_albedo * light + look.bulb.unsqueeze(-1) * LAMP_COLOR * 6.0
        col = col + look.gloss.unsqueeze(-1) * sky_refl
        if reflection is not None:
            puddle = look.large
            wet = (0.55 + 0.45 * ((puddle - 0.45) / 0.1).clamp(0, 1)) * (0.4 + 0.6 * severity)
            wet = wet * (surf.material == S.ROAD) + 0.25 * wet * ((surf.material == S.SIDEWALK) |
                                                                (surf.material == S.KERB))
            f = (_fresnel(surf, 0.05) * wet * (surf.n[:, 1] < -0.9) * surf.hit).unsqueeze(-1)
            col = col * (1 - f) + reflection * f
    elif condition == "fog":
        light = torch.tensor([0.55, 0.56, 0.58]) * _hemisphere(surf).unsqueeze(-1)
        col = albedo * light
    else:  # snow
        p = condition_parameters("snow", severity)
        up = (-surf.n[:, 1]).clamp(0, 1)
        patch = look.large
        cover = p["cover"] * (((up - 0.3) / 0.5).clamp(0, 1) * (0.55 + 0.9 * patch).clamp(0, 1) + 0.08)
        on_road = surf.material == S.ROAD
        lane = (surf.lateral.abs() - 1.6) / 3.2
        offset = (lane - torch.round(lane)).abs() * 3.2
        tracks = band(offset, 0.6, 0.95, surf.fu) * (surf.lateral.abs() < scene.road.edge_line())
        cover = torch.where(on_road, cover * (1 - 0.6 * tracks) * (0.7 + 0.3 * patch), cover).clamp(0, 1)
        snow_col = torch.tensor([0.86, 0.88, 0.92]) * (0.92 + 0.16 * patch).unsqueeze(-1)
        albedo = albedo + (snow_col - albedo) * cover.unsqueeze(-1)
        light = torch.tensor([0.62, 0.64, 0.70]) * _hemisphere(surf).unsqueeze(-1)
        col = albedo * light + look.bulb.unsqueeze(-1) * LAMP_COLOR * 2.0
    return torch.where(hit, col, sky_col)


def atmosphere(condition: str, col: Tensor, surf: R.Surface, severity: float) -> Tensor:
    """Koschmieder: L = L0·e^(−β d) + A·(1 − e^(−β d)), β = 3.912 / visibility, d the true ray length."""
    if condition == "fog":
        vis = condition_parameters("fog", severity)["visibility_m"]
    elif condition in ("rain", "snow"):
        vis = condition_parameters(condition, severity)["haze_visibility_m"]
    elif condition == "night":
        vis = 1500.0
    else:
        vis = 4000.0
    trans = torch.exp(-3.912 / vis * surf.dist).unsqueeze(-1)
    air = _airlight(condition)
    return torch.where(surf.hit.unsqueeze(-1), col * trans + air * (1 - trans), col)


# ------------------------------------------------------------------------------------------- particles


def _splat(image: np.ndarray, depth: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
           alpha: np.ndarray, color: np.ndarray) -> None:
    """Alpha-blend particle samples into the image where they are in front of the scene (sky = far)."""
    h, w = depth.shape
    xi, yi = np.round(xs).astype(np.int64), np.round(ys).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi, yi, zs, alpha = xi[ok], yi[ok], zs[ok], alpha[ok]
    scene_z = depth[yi, xi]
    front = (scene_z == 0) | (zs < scene_z)
    flat = yi[front] * w + xi[front]
    cover = np.bincount(flat, weights=alpha[front], minlength=h * w).reshape(h, w).astype(np.float32)
    cover = np.clip(cover, 0, 0.85)[..., None]
    image *= 1 - cover
    image += cover * color


def rain_streaks(image: np.ndarray, depth: np.ndarray, view: R.PinholeView, severity: float,
                 rng: np.random.Generator, brightness: np.ndarray) -> None:
    """Falling drops 0.5–12 m ahead, motion-blurred into streaks (longer when nearer), occluded by depth."""
    count = int(condition_parameters("rain", severity)["streaks"] * view.height * view.width / (192 * 640))
    z = rng.uniform(0.5, 12.0, count)
    x = (rng.uniform(-0.05, 1.05, count) * view.width - view.cx) * z / view.fx
    y = (rng.uniform(-0.3, 1.0, count) * view.height - view.cy) * z / view.fy
    length = rng.uniform(0.12, 0.25, count)  # metres fallen during the exposure
    slant = rng.normal(0.15, 0.05)
    samples = 24
    s = np.linspace(0, 1, samples)[None, :]
    yy = y[:, None] + length[:, None] * s
    xx = x[:, None] + slant * length[:, None] * s
    u = view.fx * xx / z[:, None] + view.cx
    v = view.fy * yy / z[:, None] + view.cy
    alpha = np.broadcast_to((0.05 + 0.15 * (1 - z / 12.0))[:, None], u.shape) * (0.5 + 0.5 * severity)
    zz = np.broadcast_to(z[:, None], u.shape)
    _splat(image, depth, u.ravel(), v.ravel(), zz.ravel(), alpha.ravel().astype(np.float32),
           (brightness * 1.2).astype(np.float32))


def snow_flakes(image: np.ndarray, depth: np.ndarray, view: R.PinholeView, severity: float,
                rng: np.random.Generator, brightness: np.ndarray) -> None:
    """Flakes 0.5–25 m ahead drawn as soft discs whose size falls with distance, occluded by depth."""
    count = int(condition_parameters("snow", severity)["flakes"] * view.height * view.width / (192 * 640))
    z = 0.5 + 24.5 * rng.random(count) ** 1.5
    u = rng.uniform(0, view.width, count)
    v = rng.uniform(0, view.height, count)
    radius = np.clip(view.fx * rng.uniform(0.003, 0.007, count) / z, 0.4, 4.0)
    offsets = np.arange(-4, 5)
    ox, oy = np.meshgrid(offsets, offsets)
    ox, oy = ox.ravel()[None, :], oy.ravel()[None, :]
    r2 = ox**2 + oy**2
    soft = np.clip(radius[:, None] + 0.5 - np.sqrt(r2), 0, 1)
    keep = soft > 0
    alpha = (soft * 0.85)[keep]
    uu = (u[:, None] + ox)[keep]
    vv = (v[:, None] + oy)[keep]
    zz = np.broadcast_to(z[:, None], soft.shape)[keep]
    _splat(image, depth, uu, vv, zz, alpha.astype(np.float32), (brightness * 1.15).astype(np.float32))


def bloom(image: np.ndarray, scale: float, strength: float) -> np.ndarray:
    """Glare around bright light sources: the energy above 1 spread by two Gaussian lobes."""
    bright = np.clip(image - 1.0, 0, 50).astype(np.float32)
    small = cv2.GaussianBlur(bright, (0, 0), 2.0 * scale)
    large = cv2.GaussianBlur(bright, (0, 0), 9.0 * scale)
    return image + strength * (0.5 * small + 0.25 * large)


def sensor_noise(image: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Shot + read noise in the linear domain (night exposures are gain-boosted, so noise shows)."""
    sigma = np.sqrt(np.clip(image, 0, None) * 0.004 * gain + (0.006 * gain) ** 2)
    return image + sigma * rng.standard_normal(image.shape, dtype=np.float32)


EXPOSURE = {"clear": 1.5, "night": 3.0, "rain": 1.9, "fog": 1.5, "snow": 1.4}


def tonemap(image: np.ndarray, condition: str) -> np.ndarray:
    """Linear radiance → 8-bit sRGB-ish (exponential shoulder, gamma 2.2); same curve for a whole condition."""
    mapped = 1.0 - np.exp(-np.clip(image, 0, None) * EXPOSURE[condition])
    return np.clip(np.round(255.0 * mapped ** (1 / 2.2)), 0, 255).astype(np.uint8)
