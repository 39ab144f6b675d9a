"""Pinhole cameras, rigid poses and view synthesis (backproject → transform → project → sample).

Conventions (the same as Monodepth2's):

- Camera frame: x right, y down, z forward (into the scene); depth is the z coordinate.
- Pixel coordinates: (x, y) = (column, row), the CENTRE of pixel (i, j) is at integer (j, i); so an image
  spans x ∈ [−0.5, W − 0.5] and pixel centres span [0, W − 1].
- Intrinsics ``K`` are in pixels: [[fx, s, cx], [0, fy, cy], [0, 0, 1]].
- A :class:`Pose` ``T`` maps points from one camera frame into another, p' = R·p + t. The pose a warp
  needs is T_{t→s}: it takes points in the TARGET camera frame into the SOURCE camera frame.
- Everything is batched (leading dimension B); a batch of 1 broadcasts against B.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Camera", "Pose", "pixel_grid", "warp", "warp_with_mask"]


def _as_float_tensor(x: Any, name: str) -> Tensor:
    """Tensor or array-like → floating tensor (integers become float32; float64 is kept)."""
    if isinstance(x, np.ndarray) or not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x))
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.ndim == 0:
        raise ValueError(f"{name} must be a matrix, got a scalar")
    return x


def _shape(x: Tensor) -> str:
    return str(tuple(x.shape))


def _check_broadcast_batch(name: str, batch: int, expected: int) -> None:
    if batch not in (1, expected):
        raise ValueError(
            f"{name} has batch size {batch}, which neither is 1 nor matches the data's {expected}"
        )


# --------------------------------------------------------------------------------------------- pixel grid


@functools.lru_cache(maxsize=32)
def _pixel_grid_cached(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    # Built outside inference mode so a grid first made during evaluation can still take part in
    # autograd later (inference tensors cannot be saved for backward).
    with torch.inference_mode(False):
        ys, xs = torch.meshgrid(
            torch.arange(height, device=device, dtype=dtype),
            torch.arange(width, device=device, dtype=dtype),
            indexing="ij",
        )
        return torch.stack([xs, ys, torch.ones_like(xs)], dim=0).unsqueeze(0)


def pixel_grid(
    height: int, width: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Homogeneous pixel-centre coordinates, 1×3×H×W with channels (x, y, 1); x = column, y = row.

    Cached per (height, width, device, dtype) because every training step reuses it; treat the
    result as read-only.
    """
    if height < 1 or width < 1:
        raise ValueError(f"pixel_grid needs a positive size, got {height}×{width}")
    device = torch.device(device if device is not None else "cpu")
    return _pixel_grid_cached(int(height), int(width), device, dtype or torch.float32)


# ------------------------------------------------------------------------------------------------- camera


class Camera:
    """Batched pinhole intrinsics ``K`` (B×3×3, pixels) with a cached inverse."""

    def __init__(self, K: Tensor):
        K = _as_float_tensor(K, "K")
        if K.ndim not in (2, 3) or K.shape[-2:] != (3, 3):
            raise ValueError(f"K must be 3×3 or B×3×3, got {_shape(K)}")
        self._K = K.unsqueeze(0) if K.ndim == 2 else K

    @property
    def K(self) -> Tensor:
        """Intrinsics, B×3×3, in pixels."""
        return self._K

    @functools.cached_property
    def inv_K(self) -> Tensor:
        """K⁻¹, B×3×3 (computed on first use, then cached)."""
        return torch.linalg.inv(self._K)

    @property
    def batch_size(self) -> int:
        return self._K.shape[0]

    @property
    def device(self) -> torch.device:
        return self._K.device

    @property
    def dtype(self) -> torch.dtype:
        return self._K.dtype

    def __repr__(self) -> str:
        return f"Camera(batch_size={self.batch_size}, K[0]={self._K[0].tolist()})"

    @classmethod
    def from_normalized(cls, K_norm: Any, height: int, width: int) -> Camera:
        """Intrinsics given as fractions of the image size (Monodepth2's KITTI K: fx 0.58, cx 0.5,
        fy 1.92, cy 0.5) → pixels: the first row × width, the second × height. ``K_norm`` may be 3×3
        or 4×4 (Monodepth2 stores 4×4), batched or not, a tensor or an array.
        """
        K_norm = _as_float_tensor(K_norm, "K_norm")
        if K_norm.ndim not in (2, 3) or K_norm.shape[-2:] not in ((3, 3), (4, 4)):
            raise ValueError(f"K_norm must be 3×3, 4×4, B×3×3 or B×4×4, got {_shape(K_norm)}")
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}×{width}")
        K = K_norm[..., :3, :3].clone()
        K[..., 0, :] *= width
        K[..., 1, :] *= height
        return cls(K)

    def scaled(self, sx: float, sy: float) -> Camera:
        """Intrinsics for the image resized by (sx, sy): fx, cx × sx and fy, cy × sy.

        This is Monodepth2's rule (it scales K's rows); with pixel centres at integers the exact
        principal point would be (cx + 0.5)·sx − 0.5, a half-pixel difference MD2 ignores.
        """
        K = self._K.clone()
        K[:, 0, :] *= sx
        K[:, 1, :] *= sy
        return Camera(K)

    def at_scale(self, k: int) -> Camera:
        """Intrinsics at Monodepth2's scale k (resolution / 2^k)."""
        if k < 0:
            raise ValueError(f"scale k must be >= 0, got {k}")
        return self.scaled(1.0 / 2**k, 1.0 / 2**k)

    def flipped_horizontally(self, width: int) -> Camera:
        """Intrinsics of the left-right mirrored image: cx → width − 1 − cx (and skew → −skew).

        Monodepth2 does NOT mirror K when it flips training images (its KITTI cx is the image centre,
        so it hardly matters); ACDepth does. Use this where the principal point is off-centre.
        """
        K = self._K.clone()
        K[:, 0, 2] = (width - 1) - K[:, 0, 2]
        K[:, 0, 1] = -K[:, 0, 1]
        return Camera(K)

    def to(self, *args: Any, **kwargs: Any) -> Camera:
        """Move/cast like ``Tensor.to`` (device and/or dtype)."""
        return Camera(self._K.to(*args, **kwargs))

    def backproject(self, depth: Tensor) -> Tensor:
        """Depth B×1×H×W → camera-frame points B×3×H×W: X = depth · K⁻¹ · (x, y, 1)ᵀ."""
        if depth.ndim != 4 or depth.shape[1] != 1:
            raise ValueError(f"depth must be B×1×H×W, got {_shape(depth)}")
        batch, _, height, width = depth.shape
        _check_broadcast_batch("Camera", self.batch_size, batch)
        grid = pixel_grid(height, width, depth.device, depth.dtype).view(1, 3, -1)
        inv_K = self.inv_K.to(device=depth.device, dtype=depth.dtype)
        rays = inv_K @ grid
        return (rays * depth.reshape(batch, 1, -1)).view(batch, 3, height, width)

    def project(self, points: Tensor, eps: float = 1e-7) -> tuple[Tensor, Tensor]:
        """Camera-frame points B×3×H×W → (pixel coordinates B×H×W×2 as (x, y), depth z B×1×H×W).

        Divides by z + eps as Monodepth2 does; points behind the camera (z <= 0) give meaningless
        coordinates, so check z (``warp_with_mask`` does).
        """
        if points.ndim != 4 or points.shape[1] != 3:
            raise ValueError(f"points must be B×3×H×W, got {_shape(points)}")
        batch, _, height, width = points.shape
        _check_broadcast_batch("Camera", self.batch_size, batch)
        K = self._K.to(device=points.device, dtype=points.dtype)
        cam = K @ points.reshape(batch, 3, -1)
        pix = cam[:, :2] / (cam[:, 2:3] + eps)
        pix = pix.view(batch, 2, height, width).permute(0, 2, 3, 1)
        return pix, points[:, 2:3]


# --------------------------------------------------------------------------------------------------- pose


def _rot_from_axis_angle(vec: Tensor) -> Tensor:
    """Rodrigues' formula exactly as Monodepth2's ``rot_from_axisangle`` (axis = v / (|v| + 1e-7)).

    vec: B×3 → B×3×3.
    """
    angle = torch.linalg.vector_norm(vec, dim=1, keepdim=True)
    axis = vec / (angle + 1e-7)
    ca, sa = torch.cos(angle), torch.sin(angle)
    c = 1 - ca
    x, y, z = axis[:, 0:1], axis[:, 1:2], axis[:, 2:3]
    xs, ys, zs = x * sa, y * sa, z * sa
    xc, yc, zc = x * c, y * c, z * c
    xyc, yzc, zxc = x * yc, y * zc, z * xc
    rows = [
        torch.cat([x * xc + ca, xyc - zs, zxc + ys], dim=1),
        torch.cat([xyc + zs, y * yc + ca, yzc - xs], dim=1),
        torch.cat([zxc - ys, yzc + xs, z * zc + ca], dim=1),
    ]
    return torch.stack(rows, dim=1)


def _axis_angle_from_rot(R: Tensor) -> Tensor:
    """Rotation B×3×3 → axis-angle B×3 (angle in [0, π]), via a unit quaternion.

    Of the four algebraically equal quaternion formulas, each row uses the one with the largest
    pivot (Shepperd's method), which stays accurate near 0 and near π.
    """
    m00, m01, m02 = R[:, 0, 0], R[:, 0, 1], R[:, 0, 2]
    m10, m11, m12 = R[:, 1, 0], R[:, 1, 1], R[:, 1, 2]
    m20, m21, m22 = R[:, 2, 0], R[:, 2, 1], R[:, 2, 2]
    pivots = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=1
    )
    r = torch.sqrt(pivots.clamp_min(1e-12))  # r = 2·|largest quaternion component| for the chosen row
    # candidates[:, i] = quaternion (w, x, y, z) · r_i from formula i
    candidates = torch.stack(
        [
            torch.stack([r[:, 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=1),
            torch.stack([m21 - m12, r[:, 1] ** 2, m01 + m10, m02 + m20], dim=1),
            torch.stack([m02 - m20, m01 + m10, r[:, 2] ** 2, m12 + m21], dim=1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, r[:, 3] ** 2], dim=1),
        ],
        dim=1,
    ) / (2 * r.unsqueeze(-1))
    best = pivots.argmax(dim=1)
    quat = candidates[torch.arange(R.shape[0], device=R.device), best]
    quat = quat / torch.linalg.vector_norm(quat, dim=1, keepdim=True)
    quat = torch.where(quat[:, :1] < 0, -quat, quat)  # w >= 0 → angle in [0, π]
    w, xyz = quat[:, :1], quat[:, 1:]
    sin_half = torch.linalg.vector_norm(xyz, dim=1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w)
    # angle / sin(angle/2) → 2 / w as the angle → 0
    ratio = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-8), 2 / w)
    return xyz * ratio


def _as_batched_vectors(x: Tensor, name: str) -> Tensor:
    """Accept B×3 or Monodepth2's B×1×3."""
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"{name} must be B×3 (or B×1×3), got {_shape(x)}")
    return x


class Pose:
    """A batch of rigid transforms, ``matrix`` B×4×4 = [[R, t], [0, 1]], acting as p' = R·p + t."""

    def __init__(self, matrix: Tensor):
        if not isinstance(matrix, Tensor) or matrix.ndim != 3 or matrix.shape[-2:] != (4, 4):
            shape = _shape(matrix) if isinstance(matrix, Tensor) else type(matrix).__name__
            raise ValueError(f"Pose matrix must be B×4×4 (use Pose.from_matrix for 3×4/4×4), got {shape}")
        self.matrix = matrix

    def __repr__(self) -> str:
        return f"Pose(batch_size={self.batch_size}, matrix[0]={self.matrix[0].tolist()})"

    @property
    def batch_size(self) -> int:
        return self.matrix.shape[0]

    @property
    def rotation(self) -> Tensor:
        """R, B×3×3."""
        return self.matrix[:, :3, :3]

    @property
    def translation(self) -> Tensor:
        """t, B×3."""
        return self.matrix[:, :3, 3]

    @classmethod
    def from_matrix(cls, m: Any) -> Pose:
        """From a 3×4 or 4×4 matrix, batched or not (tensor or array); the last row becomes [0, 0, 0, 1]."""
        m = _as_float_tensor(m, "pose matrix")
        if m.ndim not in (2, 3) or m.shape[-2:] not in ((3, 4), (4, 4)):
            raise ValueError(f"pose matrix must be 3×4, 4×4, B×3×4 or B×4×4, got {_shape(m)}")
        if m.ndim == 2:
            m = m.unsqueeze(0)
        bottom = torch.zeros(m.shape[0], 1, 4, device=m.device, dtype=m.dtype)
        bottom[:, 0, 3] = 1
        return cls(torch.cat([m[:, :3, :], bottom], dim=1))

    @classmethod
    def from_rt(cls, rotation: Tensor, translation: Tensor) -> Pose:
        """From R (B×3×3) and t (B×3)."""
        if rotation.ndim != 3 or rotation.shape[-2:] != (3, 3):
            raise ValueError(f"rotation must be B×3×3, got {_shape(rotation)}")
        translation = _as_batched_vectors(translation, "translation")
        return cls.from_matrix(torch.cat([rotation, translation.unsqueeze(-1)], dim=2))

    @classmethod
    def from_axis_angle(cls, axisangle: Tensor, translation: Tensor, invert: bool = False) -> Pose:
        """Monodepth2's ``transformation_from_parameters``.

        Without ``invert``: M = T(t)·R(axisangle), i.e. p' = R·p + t. With ``invert``: M = Rᵀ·T(−t),
        i.e. p' = Rᵀ(p − t), the inverse of the former. Shapes B×3 (or MD2's B×1×3).
        """
        axisangle = _as_batched_vectors(axisangle, "axisangle")
        translation = _as_batched_vectors(translation, "translation")
        if axisangle.shape[0] != translation.shape[0]:
            raise ValueError(
                f"axisangle and translation batch sizes differ: {_shape(axisangle)} vs {_shape(translation)}"
            )
        R = _rot_from_axis_angle(axisangle)
        if invert:
            R = R.transpose(1, 2)
            translation = -(R @ translation.unsqueeze(-1)).squeeze(-1)  # Rᵀ·T(−t) = [Rᵀ, −Rᵀt]
        return cls.from_rt(R, translation)

    def to_axis_angle(self) -> tuple[Tensor, Tensor]:
        """(axisangle B×3, translation B×3) such that ``from_axis_angle(*self.to_axis_angle())`` == self."""
        return _axis_angle_from_rot(self.rotation), self.translation

    @classmethod
    def identity(
        cls, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Pose:
        eye = torch.eye(4, device=device, dtype=dtype or torch.float32)
        return cls(eye.expand(batch_size, 4, 4).clone())

    def inverse(self) -> Pose:
        """Closed-form inverse [Rᵀ, −Rᵀt] (exact for rigid transforms; no general matrix inverse)."""
        R_t = self.rotation.transpose(1, 2)
        return Pose.from_rt(R_t, -(R_t @ self.translation.unsqueeze(-1)).squeeze(-1))

    def __matmul__(self, other: Pose) -> Pose:
        """Composition: (A @ B) applies B first, then A."""
        if not isinstance(other, Pose):
            return NotImplemented
        return Pose(self.matrix @ other.matrix)

    def to(self, *args: Any, **kwargs: Any) -> Pose:
        return Pose(self.matrix.to(*args, **kwargs))

    def transform(self, points: Tensor) -> Tensor:
        """Apply to points B×3×H×W (or any B×3×…): R·p + t."""
        if points.ndim < 2 or points.shape[1] != 3:
            raise ValueError(f"points must be B×3×H×W, got {_shape(points)}")
        batch = points.shape[0]
        _check_broadcast_batch("Pose", self.batch_size, batch)
        matrix = self.matrix.to(device=points.device, dtype=points.dtype)
        flat = points.reshape(batch, 3, -1)
        moved = matrix[:, :3, :3] @ flat + matrix[:, :3, 3:]
        return moved.reshape(points.shape)


# --------------------------------------------------------------------------------------------------- warp


def _project_target_pixels(source: Tensor, depth: Tensor, T: Pose, camera: Camera) -> tuple[Tensor, Tensor]:
    """Where each target pixel lands in the source image: (pixel coords B×H×W×2, source-frame z)."""
    if source.ndim != 4:
        raise ValueError(f"source must be B×C×H×W, got {_shape(source)}")
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be B×1×H×W, got {_shape(depth)}")
    if source.shape[0] != depth.shape[0] or source.shape[-2:] != depth.shape[-2:]:
        raise ValueError(
            f"source {_shape(source)} and depth {_shape(depth)} must share batch size and H×W "
            "(give the camera and both images at the same resolution)"
        )
    if min(depth.shape[-2:]) < 2:
        raise ValueError(f"warp needs images of at least 2×2 pixels, got {_shape(depth)}")
    return camera.project(T.transform(camera.backproject(depth)))


def _normalise_pixel_coords(pix: Tensor, height: int, width: int) -> Tensor:
    # Monodepth2's mapping: pixel centre 0 → −1 and W−1 → +1. That is exact only with
    # grid_sample(align_corners=True), which puts −1/+1 at the centres of the corner pixels.
    scale = pix.new_tensor([width - 1, height - 1])
    return (pix / scale - 0.5) * 2


def warp(source: Tensor, depth: Tensor, T: Pose, camera: Camera, padding_mode: str = "border") -> Tensor:
    """Synthesise the target view from ``source`` (B×C×H×W): sample it where the target pixels project.

    ``depth`` is the TARGET depth (B×1×H×W), ``T`` the pose T_{t→s} (target camera frame → source
    camera frame) and ``camera`` the intrinsics at this resolution. Bilinear ``grid_sample`` with
    ``padding_mode`` ("border" as Monodepth2) and ``align_corners=True``.
    """
    pix, _ = _project_target_pixels(source, depth, T, camera)
    grid = _normalise_pixel_coords(pix, *depth.shape[-2:])
    return _sample(source, grid.to(source.dtype), padding_mode)


def _sample(source: Tensor, grid: Tensor, padding_mode: str) -> Tensor:
    """Bilinear ``grid_sample`` (align_corners=True) that never hands torch a non-finite grid.

    With NaN/inf in the grid (NaN intrinsics, a diverged pose or depth), grid_sample's forward hides
    them behind the padding — the loss stays finite — and its CPU backward crashes the process
    (segmentation fault, an open torch bug). Such grid points are sampled at 0 instead and their
    output set to NaN, so the loss turns non-finite and the trainer's guard skips the step; finite
    grids take the plain path, unchanged.
    """
    bad = ~torch.isfinite(grid).all(dim=-1)  # B×H×W
    if not bool(bad.any()):
        return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    safe = grid.masked_fill(bad.unsqueeze(-1), 0.0)
    out = F.grid_sample(source, safe, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.masked_fill(bad.unsqueeze(1), float("nan"))


def warp_with_mask(
    source: Tensor, depth: Tensor, T: Pose, camera: Camera, padding_mode: str = "border"
) -> tuple[Tensor, Tensor]:
    """:func:`warp` plus ``valid`` (B×1×H×W bool): the projection lies inside the source image
    (pixel centres span [0, W−1]×[0, H−1]) and in front of the source camera (z > 0)."""
    pix, z = _project_target_pixels(source, depth, T, camera)
    height, width = depth.shape[-2:]
    grid = _normalise_pixel_coords(pix, height, width)
    warped = _sample(source, grid.to(source.dtype), padding_mode)
    x, y = pix[..., 0], pix[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    valid = inside.unsqueeze(1) & (z > 0)
    return warped, valid
