"""Render one sequence frame by frame: one geometry cast per frame, then one shading pass per condition."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from robustdepth.world import conditions as C
from robustdepth.world import render as R
from robustdepth.world import scene as S
from robustdepth.world.presets import CONDITIONS


def normalised_K(height: int, width: int) -> np.ndarray:
    """Monodepth2's normalised KITTI intrinsics in pixels at height×width (fx 0.58·W, fy 1.92·H, c = centre)."""
    return np.array([[0.58 * width, 0.0, 0.5 * width], [0.0, 1.92 * height, 0.5 * height], [0.0, 0.0, 1.0]])


@dataclass
class Frame:
    """One rendered frame: images (H×W×3 uint8) per condition, depth (H×W float32, 0 = sky), ids (uint16)."""

    images: dict[str, np.ndarray]
    depth: np.ndarray
    ids: np.ndarray


def _view(K: np.ndarray, scale: float, rotation: torch.Tensor, origin: torch.Tensor, height: int, width: int,
          mirror: bool = False) -> R.PinholeView:
    """Pinhole view for an image ``scale`` times the size K refers to (pixel centres at integers)."""
    return R.PinholeView(fx=float(K[0, 0] * scale), fy=float(K[1, 1] * scale),
                         cx=float((K[0, 2] + 0.5) * scale - 0.5), cy=float((K[1, 2] + 0.5) * scale - 0.5),
                         rotation=rotation, origin=origin, height=height, width=width, mirror=mirror)


class SequenceRenderer:
    """Renders the frames of one (scene, trajectory) at ``height``×``width`` with ss×ss supersampling."""

    def __init__(self, scene: S.Scene, trajectory: S.Trajectory, height: int, width: int, supersample: int = 1,
                 severity: dict[str, float] | None = None) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"render size must be at least 8×8, got {height}×{width}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.scene, self.trajectory = scene, trajectory
        self.height, self.width, self.ss = height, width, supersample
        self.K = normalised_K(height, width)
        self.severity = severity or C.severities(scene.seed)
        self._shadow: C.ShadowMap | None = None

    @property
    def shadow(self) -> C.ShadowMap:
        """The sun's shadow map, built on first use (only clear day needs it)."""
        if self._shadow is None:
            # texel ≈ 0.25 m at 640 px wide, coarser for small images (the soft PCF edge stays ~1 px wide)
            self._shadow = C.ShadowMap.build(self.scene, texel=0.25 * max(1.0, 640 / (self.width * self.ss)))
        return self._shadow

    def render(self, index: int, conditions: tuple[str, ...] = CONDITIONS) -> Frame:
        """All requested conditions of frame ``index`` from a single shared geometry pass."""
        for c in conditions:
            if c not in CONDITIONS:
                raise ValueError(f"unknown condition {c!r}; known: {', '.join(CONDITIONS)}")
        if not 0 <= index < len(self.trajectory.poses):
            raise IndexError(f"frame {index} out of range 0..{len(self.trajectory.poses) - 1}")
        pose = torch.from_numpy(self.trajectory.poses[index]).float()
        rot, pos = pose[:3, :3], pose[:3, 3]
        hr, wr = self.height * self.ss, self.width * self.ss
        view = _view(self.K, self.ss, rot, pos, hr, wr)
        prims = R.cull(self.scene, pos, rot[:, 2])
        hits = R.cast(view, self.scene, prims)
        surf = R.surfaces(view, self.scene, prims, hits)
        look = R.material_look(surf, self.scene)
        if self.ss == 1:
            depth, ids = surf.t, surf.instance
        else:  # depth and ids belong to the exact pixel centre, not to the average of the sub-samples
            cview = _view(self.K, 1, rot, pos, self.height, self.width)
            csurf = R.surfaces(cview, self.scene, prims, R.cast(cview, self.scene, prims))
            depth, ids = csurf.t, csurf.instance
        depth_np = depth.reshape(self.height, self.width).numpy().astype(np.float32)
        ids_np = ids.reshape(self.height, self.width).numpy().astype(np.uint16)
        ctx = C.FrameContext(view=view, rotation=rot, position=pos, frame_seed=index)
        images = {}
        for c in conditions:
            images[c] = self._condition(c, surf, look, prims, ctx, index)
        return Frame(images=images, depth=depth_np, ids=ids_np)

    def _reflection(self, prims: S.Primitives, ctx: C.FrameContext, severity: float) -> torch.Tensor:
        """The scene mirrored in the road plane, sampled per pixel: for a road pixel the mirror camera's ray
        IS the reflected ray. Rendered at a third of the resolution and smeared vertically, as rippled
        water smears reflections."""
        hr, wr = self.height * self.ss, self.width * self.ss
        hm, wm = max(8, hr // 3), max(8, wr // 3)
        mview = _view(self.K, self.ss * hm / hr, ctx.rotation, ctx.position, hm, wm, mirror=True)
        mhits = R.cast(mview, self.scene, prims, ground=False)
        msurf = R.surfaces(mview, self.scene, prims, mhits)
        mlook = R.material_look(msurf, self.scene)
        mctx = C.FrameContext(view=mview, rotation=ctx.rotation, position=ctx.position, frame_seed=ctx.frame_seed)
        col = C.shade("rain", msurf, mlook, self.scene, mctx, severity, None, None, lamp_light=False)
        col = C.atmosphere("rain", col, msurf, severity)
        img = col.reshape(hm, wm, 3).numpy()
        img = cv2.resize(img, (wr, hr), interpolation=cv2.INTER_LINEAR)
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=0.6 * self.ss, sigmaY=2.5 * self.ss)
        return torch.from_numpy(img.reshape(-1, 3))

    def _condition(self, condition: str, surf: R.Surface, look: R.Look, prims: S.Primitives,
                   ctx: C.FrameContext, index: int) -> np.ndarray:
        severity = self.severity[condition]
        rng = np.random.default_rng([self.scene.seed, index, CONDITIONS.index(condition)])
        shadow = self.shadow if condition == "clear" else None
        reflection = self._reflection(prims, ctx, severity) if condition == "rain" else None
        col = C.shade(condition, surf, look, self.scene, ctx, severity, shadow, reflection)
        col = C.atmosphere(condition, col, surf, severity)
        hr, wr = self.height * self.ss, self.width * self.ss
        img = np.ascontiguousarray(col.reshape(hr, wr, 3).numpy(), dtype=np.float32)
        depth_r = surf.t.reshape(hr, wr).numpy()
        if condition == "rain":
            C.rain_streaks(img, depth_r, ctx.view, severity, rng, np.array([0.55, 0.57, 0.6], np.float32))
        elif condition == "snow":
            C.snow_flakes(img, depth_r, ctx.view, severity, rng, np.array([0.75, 0.77, 0.82], np.float32))
        elif condition == "night":
            img = C.bloom(img, self.ss * self.width / 640, 0.9)
        if self.ss > 1:
            img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if condition == "rain":
            sigma = C.condition_parameters("rain", severity)["lens_blur_px"] * self.width / 640
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        elif condition == "night":
            img = C.sensor_noise(img, C.condition_parameters("night", severity)["noise_gain"], rng)
        return C.tonemap(img, condition)
