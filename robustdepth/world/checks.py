"""Geometry self-check: does warping with the ground truth reproduce the rendered images?

Self-supervised training assumes that frame t+1, warped into frame t with t's depth, the relative pose
and K, looks like frame t. On this world's ground truth that must hold up to texture resampling, or the
world would teach the wrong thing (DESIGN.md: aliased textures broke it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robustdepth.world import scene as S
from robustdepth.world.sequence import SequenceRenderer, normalised_K


def photometric_warp_error(height: int = 192, width: int = 640, seed: int = 11, frame: int = 3) -> float:
    """Mean L1 (intensities in [0, 1]) between clear frame t and frame t+1 warped into t with GT depth,
    GT relative pose T_{t→t+1} = inv(pose_{t+1})·pose_t and K, over pixels that land inside frame t+1,
    are not sky and are not occluded there (the projected depth matches t+1's own depth)."""
    from robustdepth.geometry import Camera, Pose, warp_with_mask

    scene, traj = S.build_sequence(seed, frame + 2, stop_probability=0.0)
    renderer = SequenceRenderer(scene, traj, height, width)
    f0, f1 = renderer.render(frame, ("clear",)), renderer.render(frame + 1, ("clear",))
    if traj.speeds[frame] <= 0:
        raise ValueError(f"frame {frame} of sequence seed {seed} is static; the check needs motion")
    T = Pose.from_matrix(np.linalg.inv(traj.poses[frame + 1]) @ traj.poses[frame])
    cam = Camera(torch.from_numpy(normalised_K(height, width)).float())

    def img(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).float().permute(2, 0, 1)[None] / 255

    depth0 = torch.from_numpy(f0.depth)[None, None]
    depth1 = torch.from_numpy(f1.depth)[None, None]
    warped, valid = warp_with_mask(img(f1.images["clear"]), depth0, T, cam)
    pix, z = cam.project(T.transform(cam.backproject(depth0)))
    grid = (pix / torch.tensor([width - 1.0, height - 1.0]) - 0.5) * 2
    src_depth = F.grid_sample(depth1, grid, mode="nearest", align_corners=True)
    visible = (src_depth > 0) & ((src_depth - z).abs() < 0.03 * z + 0.05)
    mask = valid & (depth0 > 0) & visible
    if mask.float().mean() < 0.3:
        raise RuntimeError(f"only {mask.float().mean():.0%} of pixels are comparable; the check is not meaningful")
    err = (warped - img(f0.images["clear"])).abs().mean(1, keepdim=True)
    return float(err[mask].mean())
