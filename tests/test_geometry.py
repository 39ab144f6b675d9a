"""Geometry: intrinsics, rigid poses, projection round trips, and warping a rendered textured plane."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from robustdepth.geometry import Camera, Pose, pixel_grid, warp, warp_with_mask

# Monodepth2's normalised KITTI intrinsics (4×4, as it stores them).
MD2_K = np.array(
    [[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    dtype=np.float32,
)


def small_camera(height: int = 48, width: int = 64) -> Camera:
    return Camera(
        torch.tensor([[60.0, 0.0, (width - 1) / 2 + 1.3], [0.0, 58.0, (height - 1) / 2 - 0.7], [0, 0, 1]])
    )


# ---------------------------------------------------------------------------------------------- camera


def test_k_and_inverse() -> None:
    cam = Camera(torch.tensor([[[100.0, 0.5, 32.0], [0, 90.0, 24.0], [0, 0, 1]]] * 2))
    assert cam.batch_size == 2 and cam.K.shape == (2, 3, 3)
    torch.testing.assert_close(cam.K @ cam.inv_K, torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    assert cam.inv_K is cam.inv_K  # computed once
    assert Camera(torch.eye(3)).K.shape == (1, 3, 3)


@pytest.mark.parametrize("bad", [torch.zeros(4, 2), torch.zeros(2, 4, 4), torch.zeros(3)])
def test_bad_k_shape_is_named(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"K must be 3×3 or B×3×3, got " + re.escape(str(tuple(bad.shape)))):
        Camera(bad)


def test_from_normalized_monodepth2_kitti() -> None:
    cam = Camera.from_normalized(MD2_K, height=192, width=640)
    expected = torch.tensor([[0.58 * 640, 0, 320.0], [0, 1.92 * 192, 96.0], [0, 0, 1]])
    torch.testing.assert_close(cam.K[0], expected)
    # 3×3 tensor input and batched input give the same.
    torch.testing.assert_close(Camera.from_normalized(torch.from_numpy(MD2_K[:3, :3]), 192, 640).K, cam.K)
    assert Camera.from_normalized(np.stack([MD2_K] * 3), 192, 640).batch_size == 3
    with pytest.raises(ValueError, match="K_norm"):
        Camera.from_normalized(np.zeros((2, 3)), 192, 640)


def test_scaled_and_at_scale_match_monodepth2_per_scale_k() -> None:
    cam = Camera.from_normalized(MD2_K, 192, 640)
    for k in range(4):
        # Monodepth2 builds scale k's K from the normalised K at (W // 2^k, H // 2^k).
        expected = Camera.from_normalized(MD2_K, 192 // 2**k, 640 // 2**k).K
        torch.testing.assert_close(cam.at_scale(k).K, expected)
    half_width = cam.scaled(0.5, 1.0).K[0]
    assert half_width[0, 0] == pytest.approx(0.58 * 320) and half_width[0, 2] == pytest.approx(160)
    assert half_width[1, 1] == pytest.approx(1.92 * 192) and half_width[1, 2] == pytest.approx(96)


def test_flipped_horizontally_mirrors_projection() -> None:
    width = 64
    cam = small_camera(width=width)
    points = torch.tensor([[1.0, -0.5, 4.0], [-2.0, 0.3, 7.0]]).T.reshape(1, 3, 1, 2)
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    pix, _ = cam.project(points)
    pix_flipped, _ = cam.flipped_horizontally(width).project(mirrored)
    torch.testing.assert_close(pix_flipped[..., 0], (width - 1) - pix[..., 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(pix_flipped[..., 1], pix[..., 1])


def test_camera_to_dtype() -> None:
    cam = small_camera().to(torch.float64)
    assert cam.K.dtype == torch.float64 and cam.inv_K.dtype == torch.float64


# ------------------------------------------------------------------------------------------------- pose


def random_axis_angles(n: int, generator: torch.Generator) -> torch.Tensor:
    axes = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1)
    angles = torch.cat([torch.tensor([1e-4, 0.01, 3.0, 3.1]), torch.rand(n - 4, generator=generator) * 3.1])
    return axes * angles.unsqueeze(1)


def test_from_axis_angle_is_rodrigues() -> None:
    g = torch.Generator().manual_seed(0)
    aa = random_axis_angles(16, g).double()
    R = Pose.from_axis_angle(aa, torch.zeros_like(aa)).rotation
    skew = torch.zeros(16, 3, 3, dtype=torch.float64)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -aa[:, 2], aa[:, 1], -aa[:, 0]
    skew = skew - skew.transpose(1, 2)
    torch.testing.assert_close(R, torch.linalg.matrix_exp(skew), atol=1e-6, rtol=0)


def test_axis_angle_round_trip() -> None:
    g = torch.Generator().manual_seed(1)
    aa, t = random_axis_angles(32, g), torch.randn(32, 3, generator=g)
    pose = Pose.from_axis_angle(aa, t)
    aa_back, t_back = pose.to_axis_angle()
    torch.testing.assert_close(aa_back, aa, atol=2e-5, rtol=0)
    torch.testing.assert_close(t_back, t)
    torch.testing.assert_close(Pose.from_axis_angle(aa_back, t_back).matrix, pose.matrix, atol=1e-5, rtol=0)
    # Monodepth2's B×1×3 shape is accepted as well.
    torch.testing.assert_close(Pose.from_axis_angle(aa[:, None], t[:, None]).matrix, pose.matrix)


def test_inverse_and_invert_flag() -> None:
    g = torch.Generator().manual_seed(2)
    aa, t = random_axis_angles(8, g), torch.randn(8, 3, generator=g)
    pose = Pose.from_axis_angle(aa, t)
    eye = torch.eye(4).expand(8, 4, 4)
    torch.testing.assert_close((pose.inverse() @ pose).matrix, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close((pose @ pose.inverse()).matrix, eye, atol=1e-5, rtol=0)
    inverted = Pose.from_axis_angle(aa, t, invert=True)
    torch.testing.assert_close(inverted.matrix, pose.inverse().matrix, atol=1e-5, rtol=0)
    torch.testing.assert_close(inverted.matrix, torch.linalg.inv(pose.matrix), atol=1e-4, rtol=0)


def test_pose_transform_composition_and_constructors() -> None:
    g = torch.Generator().manual_seed(3)
    a = Pose.from_axis_angle(random_axis_angles(4, g), torch.randn(4, 3, generator=g))
    b = Pose.from_axis_angle(random_axis_angles(4, g), torch.randn(4, 3, generator=g))
    points = torch.randn(4, 3, 5, 6, generator=g)
    torch.testing.assert_close((a @ b).transform(points), a.transform(b.transform(points)), atol=1e-5, rtol=0)
    expected = a.rotation @ points.view(4, 3, -1) + a.translation.unsqueeze(-1)
    torch.testing.assert_close(a.transform(points), expected.view(4, 3, 5, 6))
    torch.testing.assert_close(Pose.identity(4).transform(points), points)
    torch.testing.assert_close(Pose.from_matrix(a.matrix[0, :3]).matrix, a.matrix[:1])
    with pytest.raises(ValueError, match=r"got \(2, 4\)"):
        Pose.from_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="B×4×4"):
        Pose(torch.zeros(3, 4))


# --------------------------------------------------------------------------------- projection round trip


def test_pixel_grid_values_and_cache() -> None:
    grid = pixel_grid(3, 4)
    assert grid.shape == (1, 3, 3, 4)
    assert grid[0, 0, 2].tolist() == [0, 1, 2, 3] and grid[0, 1, :, 1].tolist() == [0, 1, 2]
    assert pixel_grid(3, 4) is grid
    assert pixel_grid(3, 4, dtype=torch.float64).dtype == torch.float64


def test_backproject_project_identity_returns_pixel_grid() -> None:
    cam = small_camera()
    depth = 1.0 + 9.0 * torch.rand(2, 1, 48, 64)
    points = Pose.identity(2).transform(cam.backproject(depth))
    pix, z = cam.project(points)
    grid = pixel_grid(48, 64)[0].permute(1, 2, 0)[..., :2]
    torch.testing.assert_close(pix, grid.expand(2, 48, 64, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, depth)
    with pytest.raises(ValueError, match="depth must be B×1×H×W"):
        cam.backproject(torch.ones(2, 48, 64))


# --------------------------------------------------------------- warping a rendered, textured plane


def plane_texture(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Smooth, band-limited RGB texture on the plane (wavelengths ≥ 0.5 m ≈ 8+ pixels here)."""
    channels = [
        0.5 + 0.2 * torch.sin(2 * math.pi * u / 0.9 + 0.3) + 0.15 * torch.cos(2 * math.pi * v / 0.7),
        0.5 + 0.2 * torch.cos(2 * math.pi * (u + v) / 1.1) + 0.1 * torch.sin(2 * math.pi * v / 0.5),
        0.5 + 0.25 * torch.sin(2 * math.pi * (u - 0.5 * v) / 0.8 + 1.0),
    ]
    return torch.stack(channels, dim=0)


def render_plane(cam: Camera, cam_from_world: Pose, normal: torch.Tensor, offset: float, hw: tuple[int, int]):
    """Ray-cast the plane {X : n·X = offset} (world frame) into a camera.

    Returns (image 1×3×H×W, depth 1×1×H×W).
    """
    height, width = hw
    rays_cam = cam.backproject(torch.ones(1, 1, height, width, dtype=torch.float64)).view(3, -1)  # z = 1
    world_from_cam = cam_from_world.inverse()
    rot, centre = world_from_cam.rotation[0], world_from_cam.translation[0]
    rays_world = rot @ rays_cam
    # Distance along a ray with z-component 1 in the camera frame is exactly the camera depth.
    depth = (offset - normal @ centre) / (normal @ rays_world)
    hits = centre[:, None] + rays_world * depth
    e1 = torch.nn.functional.normalize(
        torch.linalg.cross(normal, torch.tensor([0.0, 1.0, 0.0], dtype=normal.dtype)), dim=0
    )
    e2 = torch.linalg.cross(normal, e1)
    image = plane_texture(e1 @ hits, e2 @ hits).view(1, 3, height, width)
    return image.float(), depth.view(1, 1, height, width).float()


@pytest.fixture(scope="module")
def plane_scene():
    """A slanted textured plane seen by a target camera (at the world origin) and a moved source camera."""
    height, width = 48, 64
    cam = small_camera(height, width).to(torch.float64)
    normal = torch.nn.functional.normalize(torch.tensor([0.15, -0.25, 1.0], dtype=torch.float64), dim=0)
    offset = 4.0 * float(normal[2])  # passes through (0, 0, 4)
    target_from_world = Pose.identity(1, dtype=torch.float64)
    # T_{t→s}: the source camera is rotated a little and moved 0.3 m right, 0.1 m up, 0.4 m forward.
    t_to_s = Pose.from_axis_angle(
        torch.tensor([[0.02, -0.04, 0.015]], dtype=torch.float64),
        torch.tensor([[-0.3, 0.1, -0.4]], dtype=torch.float64),
    )
    target, target_depth = render_plane(cam, target_from_world, normal, offset, (height, width))
    source, _ = render_plane(cam, t_to_s, normal, offset, (height, width))
    return cam.to(torch.float32), target, target_depth, source, t_to_s.to(torch.float32)


def masked_error(warped: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> float:
    return float(((warped - target).abs().mean(1, keepdim=True))[valid].mean())


def test_warp_reproduces_rendered_target(plane_scene) -> None:
    cam, target, depth, source, t_to_s = plane_scene
    warped, valid = warp_with_mask(source, depth, t_to_s, cam)
    assert valid.float().mean() > 0.6  # most of the view overlaps
    good = masked_error(warped, target, valid)
    assert good < 0.01, good
    torch.testing.assert_close(warp(source, depth, t_to_s, cam), warped)
    # Wrong poses (the inverse, or no motion) must reproduce the target clearly worse.
    for wrong in (t_to_s.inverse(), Pose.identity(1)):
        wrong_warped, wrong_valid = warp_with_mask(source, depth, wrong, cam)
        bad = masked_error(wrong_warped, target, valid & wrong_valid)
        assert bad > 5 * good, (good, bad)
    # So must a wrong depth (scaled by 1.5).
    scaled = masked_error(warp(source, depth * 1.5, t_to_s, cam), target, valid)
    assert scaled > 5 * good, (good, scaled)


def test_warp_batched_with_broadcast_camera(plane_scene) -> None:
    cam, _, depth, source, t_to_s = plane_scene
    warped = warp(source.expand(3, -1, -1, -1), depth.expand(3, -1, -1, -1), t_to_s, cam)
    torch.testing.assert_close(warped[2:], warp(source, depth, t_to_s, cam))


def test_warp_with_mask_marks_out_of_view_pixels() -> None:
    height, width, fx, z = 16, 40, 60.0, 4.0
    cam = Camera(torch.tensor([[fx, 0.0, 20.0], [0.0, fx, 8.0], [0.0, 0.0, 1.0]]))
    depth = torch.full((1, 1, height, width), z)
    # Moving the source camera 0.75 m left shifts the target's pixels by fx·0.75/z = 11.25 px right.
    t_to_s = Pose.from_matrix(torch.tensor([[1.0, 0, 0, 0.75], [0, 1, 0, 0], [0, 0, 1, 0]]))
    source = torch.rand(1, 3, height, width)
    _, valid = warp_with_mask(source, depth, t_to_s, cam)
    x_target = torch.arange(width, dtype=torch.float32)
    expected = (x_target + fx * 0.75 / z) <= width - 1
    assert torch.equal(valid[0, 0], expected.expand(height, width))
    # Points behind the source camera are invalid everywhere.
    behind = Pose.from_matrix(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -5.0]]))
    assert not warp_with_mask(source, depth, behind, cam)[1].any()


def test_warp_rejects_mismatched_inputs() -> None:
    cam = small_camera()
    with pytest.raises(ValueError, match="share batch size and H×W"):
        warp(torch.rand(1, 3, 48, 64), torch.ones(1, 1, 24, 32), Pose.identity(1), cam)
    with pytest.raises(ValueError, match="batch size 2"):
        warp(torch.rand(3, 3, 48, 64), torch.ones(3, 1, 48, 64), Pose.identity(2), cam)


def test_warp_is_differentiable_in_depth_and_pose(plane_scene) -> None:
    cam, target, depth, source, t_to_s = plane_scene
    depth = depth.clone().requires_grad_(True)
    axisangle, translation = t_to_s.to_axis_angle()
    axisangle.requires_grad_(True)
    translation.requires_grad_(True)
    warped = warp(source, depth, Pose.from_axis_angle(axisangle, translation), cam)
    (warped - target).abs().mean().backward()
    for grad in (depth.grad, axisangle.grad, translation.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_pixel_grid_made_in_inference_mode_works_in_autograd() -> None:
    with torch.inference_mode():
        pixel_grid(5, 7)  # first use during evaluation populates the cache
    K = torch.tensor([[10.0, 0.0, 3.0], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]], requires_grad=True)
    points = Camera(K).backproject(torch.ones(1, 1, 5, 7))
    points.sum().backward()  # would fail if the cached grid were an inference tensor
    assert K.grad is not None
