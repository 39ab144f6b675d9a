"""Self-supervised loss building blocks against their defining properties and hand-computed cases."""

from __future__ import annotations

import torch

from robustdepth.losses.photometric import min_reprojection
from robustdepth.losses.smoothness import edge_aware_smoothness, mean_normalised
from robustdepth.similarity import photometric_error, ssim_dissimilarity


def _image(seed: int, shape: tuple[int, ...] = (2, 3, 16, 20)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_ssim_zero_for_identical_and_bounded() -> None:
    x, y = _image(0), _image(1)
    assert torch.allclose(ssim_dissimilarity(x, x), torch.zeros_like(x), atol=1e-6)
    d = ssim_dissimilarity(x, y)
    assert d.shape == x.shape and d.min() >= 0 and d.max() <= 1
    assert torch.allclose(d, ssim_dissimilarity(y, x), atol=1e-6)  # symmetric
    assert d.mean() > 0.2  # independent noise images are far apart


def test_ssim_hand_computed_constant_images() -> None:
    # Constant images a and b: sigma terms vanish, SSIM = (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (1 - (2 * a * b + c1) / (a * a + b * b + c1)) / 2
    f64 = torch.float64  # float32 E[x²] − μ² leaves ~1e-5 noise next to C2
    d = ssim_dissimilarity(torch.full((1, 1, 5, 5), a, dtype=f64), torch.full((1, 1, 5, 5), b, dtype=f64))
    assert torch.allclose(d, torch.full_like(d, expected), atol=1e-9)


def test_photometric_error_mixes_ssim_and_l1() -> None:
    x, y = _image(2), _image(3)
    pe = photometric_error(x, y, 0.85)
    expected = 0.85 * ssim_dissimilarity(x, y).mean(1, keepdim=True) + 0.15 * (x - y).abs().mean(1, keepdim=True)
    assert pe.shape == (2, 1, 16, 20) and torch.allclose(pe, expected)
    assert torch.allclose(photometric_error(x, y, 0.0), (x - y).abs().mean(1, keepdim=True))


def test_automask_prefers_identity_where_static() -> None:
    reprojection = torch.tensor([[[[0.3, 0.1]], [[0.4, 0.2]]]])  # B=1, S=2, 1×2
    identity = torch.tensor([[[[0.05, 0.5]], [[0.5, 0.5]]]])
    loss, kept = min_reprojection(reprojection, identity)
    # pixel 0: a static source explains it (0.05) -> masked; pixel 1: warped source wins (0.1)
    assert torch.allclose(loss, torch.tensor([[[[0.05, 0.1]]]]))
    assert kept.tolist() == [[[[False, True]]]]
    loss_nomask, kept_all = min_reprojection(reprojection, None)
    assert torch.allclose(loss_nomask, torch.tensor([[[[0.3, 0.1]]]])) and kept_all.all()


def test_smoothness_properties() -> None:
    image = _image(4, (1, 3, 8, 8))
    assert edge_aware_smoothness(torch.ones(1, 1, 8, 8), image) == 0
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    flat, edgy = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    edgy[..., ::2] = 1.0  # strong image gradients everywhere along x
    assert edge_aware_smoothness(ramp, edgy) < edge_aware_smoothness(ramp, flat)
    # hand value on a flat image: mean |dx| = 1/7, mean |dy| = 0
    assert torch.isclose(edge_aware_smoothness(ramp, flat), torch.tensor(1 / 7))
    assert torch.allclose(mean_normalised(torch.full((1, 1, 2, 2), 4.0)), torch.ones(1, 1, 2, 2), atol=1e-6)
