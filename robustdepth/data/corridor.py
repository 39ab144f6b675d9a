"""An analytic driving corridor with exact depth, poses and K — the project's smallest real sequence.

The scene is a camera driving forward between two textured walls over a textured road, towards a far
wall; textures are smooth sums of sinusoids anchored in world coordinates (band-limited, so frames
match photometrically). Rendering is exact ray–plane intersection, so depth and poses are ground
truth. The test suite trains on it (tests/conftest.py) and the speed benchmarks time real training
steps on it (benchmarks/speed.py): it is written in seconds and needs no data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (normal axis, offset, sign facing the camera) of each plane, in camera-start coordinates
# x right, y down, z forward.
_PLANES = (("y", 1.5), ("x", -3.0), ("x", 3.0), ("z", 60.0))


def _texture(points: np.ndarray, plane: int) -> np.ndarray:
    """Smooth world-anchored colour for points (N×3) on plane ``plane``: wavelengths >= ~1.2 m."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    u, v = {0: (x, z), 1: (z, y), 2: (z, y), 3: (x, y)}[plane]
    base = np.array([[0.45, 0.42, 0.40], [0.65, 0.45, 0.35], [0.35, 0.50, 0.60], [0.55, 0.55, 0.45]])[plane]
    pattern = (0.5 * np.sin(2 * np.pi * u / 1.7 + plane) * np.cos(2 * np.pi * v / 2.3)
               + 0.3 * np.sin(2 * np.pi * (u + 0.7 * v) / 3.1) + 0.2 * np.cos(2 * np.pi * (u - v) / 1.3))
    colour = base[None, :] + 0.28 * pattern[:, None] * np.array([1.0, 0.8, 0.6])[None, :]
    return np.clip(colour, 0.0, 1.0)


def render_corridor(K: np.ndarray, height: int, width: int, cam_z: float, cam_x: float = 0.0,
                    yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H×W×3 float), depth along z (H×W) and camera-to-world pose (4×4) at a camera position."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    origin = np.array([cam_x, 0.0, cam_z])
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T  # z = 1
    rays = rays_cam @ R.T
    best_t = np.full(len(rays), np.inf)
    best_plane = np.full(len(rays), -1)
    for i, (axis, offset) in enumerate(_PLANES):
        a = "xyz".index(axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (offset - origin[a]) / rays[:, a]
        hit = (t > 1e-6) & (t < best_t)
        best_t[hit], best_plane[hit] = t[hit], i
    points = origin[None] + rays * best_t[:, None]
    image = np.zeros((len(rays), 3))
    for i in range(len(_PLANES)):
        sel = best_plane == i
        image[sel] = _texture(points[sel], i)
    depth = best_t  # rays_cam has z = 1, so the ray parameter is the depth along the optical axis
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = R, origin
    return image.reshape(height, width, 3), depth.reshape(height, width), pose


def corridor_K(height: int, width: int) -> np.ndarray:
    """Monodepth2's normalised KITTI K at this resolution."""
    return np.array([[0.58 * width, 0, 0.5 * width], [0, 1.92 * height, 0.5 * height], [0, 0, 1]])


def write_corridor_sequence(folder: Path, frames: int = 12, height: int = 64, width: int = 192,
                            speed: float = 0.8, seed: int = 0) -> Path:
    """A folder sequence (PNG frames, intrinsics.txt, depth/*.npy, poses.txt) of the corridor."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "depth").mkdir(exist_ok=True)
    K = corridor_K(height, width)
    np.savetxt(folder / "intrinsics.txt", K)
    poses = []
    for i in range(frames):
        image, depth, pose = render_corridor(K, height, width, cam_z=i * speed,
                                             cam_x=0.3 * np.sin(i / 3), yaw=0.02 * rng.standard_normal())
        Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / f"{i:06d}.png")
        np.save(folder / "depth" / f"{i:06d}.npy", depth.astype(np.float32))
        poses.append(pose[:3].reshape(-1))
    np.savetxt(folder / "poses.txt", np.array(poses))
    return folder


def corridor_overrides(root: Path, **extra: object) -> list[str]:
    """Config overrides that train on the corridor folder quickly."""
    base = {
        "data.dataset": "folder", "data.root": str(root), "data.height": 64, "data.width": 192,
        "data.num_workers": 0, "optim.batch_size": 2, "train.progress": False, "train.log_every": 1000,
        "train.image_every": 100000, "train.ckpt_every": 100000,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
