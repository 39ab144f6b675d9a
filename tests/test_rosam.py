"""RoSAMDepth maths: region statistics, AROM (planted outliers, a correct teacher), ORE (the paper's
counter-example), SRC, void handling, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustdepth.geometry import Camera, Pose
from robustdepth.losses.rosam import region_contrast, regional_gaussian_likelihood
from robustdepth.providers.rosam import (
    adaptive_outlier_mask,
    min_photometric_error,
    object_reliability,
    region_index,
    region_mean_std,
    resize_labels,
    to_pixels,
)


def _random_partition(rng: np.random.Generator, batch: int, height: int, width: int, regions: int) -> torch.Tensor:
    """Blocky random labels 0..regions (0 = void) so regions have varied sizes, some tiny, some absent."""
    coarse = rng.integers(0, regions + 1, size=(batch, height // 3 + 1, width // 3 + 1))
    labels = np.repeat(np.repeat(coarse, 3, 1), 3, 2)[:, :height, :width]
    noise = rng.random((batch, height, width)) < 0.05
    labels = np.where(noise, rng.integers(0, regions + 1, size=labels.shape), labels)
    return torch.from_numpy(labels * 7)  # sparse label values: ids need not be contiguous


def _numpy_region_stats(values: np.ndarray, labels: np.ndarray, min_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: per image, per region, mean and population std broadcast to pixels (NaN = void/dropped)."""
    mean = np.full(values.shape, np.nan)
    std = np.full(values.shape, np.nan)
    for b in range(values.shape[0]):
        for r in np.unique(labels[b]):
            sel = labels[b] == r
            if r == 0 or sel.sum() < min_pixels:
                continue
            mean[b][sel] = values[b][sel].mean()
            std[b][sel] = values[b][sel].std()
    return mean, std


@pytest.mark.parametrize("min_pixels", [1, 6])
def test_region_statistics_equal_numpy_reference(min_pixels: int) -> None:
    rng = np.random.default_rng(min_pixels)
    labels = _random_partition(rng, batch=3, height=17, width=23, regions=9)
    values = torch.from_numpy(rng.normal(size=labels.shape)).double()
    index = region_index(labels, min_pixels)
    mean, std = region_mean_std(values[:, None], index)
    mean_px = to_pixels(mean, index, float("nan"))[:, 0].numpy()
    std_px = to_pixels(std, index, float("nan"))[:, 0].numpy()
    ref_mean, ref_std = _numpy_region_stats(values.numpy(), labels.numpy(), min_pixels)
    np.testing.assert_array_equal(np.isnan(mean_px), np.isnan(ref_mean))
    np.testing.assert_allclose(mean_px[~np.isnan(ref_mean)], ref_mean[~np.isnan(ref_mean)], rtol=1e-10)
    np.testing.assert_allclose(std_px[~np.isnan(ref_std)], ref_std[~np.isnan(ref_std)], rtol=1e-9, atol=1e-12)
    # regions are per image: the same label value in two images is two regions
    assert index.num_regions == sum(
        int(sum((labels[b] == r).sum() >= min_pixels for r in np.unique(labels[b]) if r != 0)) for b in range(3))
    assert int(index.local.max()) + 1 == index.num_local


def test_region_index_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match="integers"):
        region_index(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="B×H×W"):
        region_index(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        region_index(-torch.ones(1, 4, 4, dtype=torch.long))


# ------------------------------------------------------------------------------ ORE: the counter-example

_H, _W, _FX = 64, 192, 100.0
_Z_OBJ, _Z_BG, _T = 4.0, 20.0, 0.2  # object shifts 5 px per frame, background 1 px: exact integer warps


def _render_layered(cam_x: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray,
                                                                      np.ndarray]:
    """A fronto-parallel object (4 m) before a textured wall (20 m), seen from camera x = ``cam_x``.

    The object's body varies only vertically and carries three thin dark vertical stripes, so a
    horizontal mis-registration (wrong depth) changes the error only at the stripes: the "locally
    changed" pixel error of the paper's Fig. 4. Boundaries sit between pixel centres (no ties).
    """
    K = np.array([[_FX, 0, _W / 2 - 0.5], [0, _FX, _H / 2 - 0.5], [0, 0, 1]])
    v, u = np.mgrid[0:_H, 0:_W].astype(float)
    xo, yo = (u - K[0, 2]) * _Z_OBJ / _FX + cam_x, (v - K[1, 2]) * _Z_OBJ / _FX
    xb, yb = (u - K[0, 2]) * _Z_BG / _FX + cam_x, (v - K[1, 2]) * _Z_BG / _FX
    on = (xo > -1.40) & (xo < 1.00) & (yo > -0.60) & (yo < 0.60)
    wall = (0.5 + 0.2 * np.sin(2 * np.pi * xb / 1.9) * np.cos(2 * np.pi * yb / 1.3)
            + 0.1 * np.sin(2 * np.pi * (xb + yb) / 0.9))
    body = 0.6 + 0.15 * np.sin(2 * np.pi * yo / 0.32)
    for stripe in (-0.9, -0.1, 0.58):
        body = np.where(np.abs(xo - stripe) < 0.06, 0.2, body)
    grey = np.where(on, body, wall)
    image = np.stack([grey, 0.9 * grey, 0.8 * grey]) + rng.normal(0, 0.003, (3, _H, _W))
    depth = np.where(on, _Z_OBJ, _Z_BG)
    return (torch.tensor(image, dtype=torch.float32)[None], torch.tensor(depth, dtype=torch.float32)[None, None],
            on, K)


def _translation(tx: float) -> Pose:
    m = torch.eye(4)
    m[0, 3] = tx
    return Pose(m[None])


def test_ore_counter_example_scaled_object_keeps_pixel_error_but_loses_reliability() -> None:
    """Scaling an object's depth by 0.25–4× leaves most of its pixel errors unchanged, yet ORE flags it.

    Sources at camera x = ∓0.2 m (poses T_t→s translate target points by ±0.2 m); the sources are 0.04
    brighter (auto-exposure), which gives every pixel the same small error floor, as real frames have.
    """
    rng = np.random.default_rng(0)
    target, depth, on, K = _render_layered(0.0, rng)
    sources = [_render_layered(-_T, rng)[0] + 0.04, _render_layered(_T, rng)[0] + 0.04]
    poses, camera = [_translation(_T), _translation(-_T)], Camera(torch.tensor(K, dtype=torch.float32))
    obj = torch.from_numpy(on)
    index = region_index(torch.from_numpy(np.where(on, 2, 1))[None])

    def evaluate(scale: float) -> tuple[torch.Tensor, float]:
        d = depth.clone()
        d[0, 0][obj] *= scale
        pe = min_photometric_error(target, sources, d, poses, camera)
        return pe, float(object_reliability(pe, index, beta=2.0, eps=0.0)[0, 0][obj][0])

    pe_true, r_true = evaluate(1.0)
    assert r_true > 0.7, "with the true depth the object is as reliable as the image"
    for scale in (0.25, 0.5, 2.0, 4.0):
        pe, r = evaluate(scale)
        change = (pe - pe_true)[0, 0][obj].abs()
        assert float(change.median()) < 0.005, f"×{scale}: most of the object's pixel errors should barely move"
        # a pixel-level reliability with the same form keeps trusting most of the wrongly scaled object
        pixel_rel = torch.exp(-2.0 * (pe - pe.mean()).clamp(min=0) / pe.mean())[0, 0][obj]
        assert float(pixel_rel.median()) > 0.9, f"×{scale}: pixel-level reliability should look (falsely) fine"
        assert r < 0.1 * r_true, f"×{scale}: ORE should flag the whole object (R={r:.3g} vs {r_true:.3g})"


# ---------------------------------------------------------------------------------------------- AROM


def test_arom_flags_planted_outliers_and_not_uniform_regions() -> None:
    rng = np.random.default_rng(1)
    h, w = 20, 30
    labels = np.zeros((h, w), dtype=np.int64)
    labels[:, :10], labels[:, 10:20], labels[:, 20:] = 1, 2, 3
    labels[:2, :] = 0  # void strip
    d = np.zeros((h, w))
    d[:, :10] = 0.3  # constant region
    d[:, 10:20] = np.linspace(0.1, 0.5, 10)[None, :]  # a plane-like ramp
    d[:, 20:] = 0.2 + 0.002 * rng.standard_normal((h, 10))  # smooth region ...
    planted = np.zeros((h, w), dtype=bool)
    planted[[5, 9, 14], [22, 25, 28]] = True  # ... with three intra-object outliers
    d[planted] = 0.8
    d[:2, :] = rng.uniform(0.01, 5.0, (2, w))  # wild void pixels
    arom = adaptive_outlier_mask(torch.tensor(d)[None, None], region_index(torch.from_numpy(labels)[None]))
    m = arom.m_out[0, 0].numpy()
    assert (m[planted] < 0.05).all(), m[planted]
    inliers = ~planted & (labels > 0)
    assert (m[inliers] > 0.75).all(), m[inliers].min()
    assert (m[labels == 0] == 1).all(), "void pixels are never outliers"
    # L_rgl pulls the student towards μ mainly where the teacher is an outlier (relative σ floor 0.05, the default)
    d_s = torch.tensor(d)[None, None] + 0.05
    grad = torch.autograd.functional.jacobian(lambda x: regional_gaussian_likelihood(x, arom), d_s)[0, 0].abs()
    assert grad[torch.from_numpy(planted)].min() > 10 * grad[torch.from_numpy(inliers)].max()
    assert (grad[torch.from_numpy(labels == 0)] == 0).all()


def _checks_module():  # type: ignore[no-untyped-def]
    """benchmarks/rosam_checks.py: the constructed road scene the false-positive measurement uses."""
    from tests.conftest import load_benchmark

    return load_benchmark("rosam_checks")


def test_arom_keeps_a_correct_teacher_unflagged_and_still_catches_planted_outliers() -> None:
    """Perspective road + uniform cars + a slanted wall with the EXACT (and 1 %-noisy) inverse depth as the
    teacher: the default AROM flags nothing; the paper's literal τ0 + λσ (λ 1, no σ floor) flags ≈4.7 % of the
    road at 18–74 m and the noise tail of the cars. Planted 2×/0.5×/1.3× outliers inside the cars stay caught."""
    rc = _checks_module()
    for noise in (0.0, 0.01):
        scene = rc.road_scene(height=96, width=320, noise=noise)
        disp = np.where(scene["labels"] > 0, 1.0 / np.where(scene["depth"] > 0, scene["depth"], 1.0), 0.0)
        new = adaptive_outlier_mask(torch.from_numpy(disp)[None, None], region_index(
            torch.from_numpy(scene["labels"])[None], 4)).m_out
        old = rc.arom_maps(disp, scene["labels"], rc.OLD).m_out
        for part in ("road", "ground", "cars", "wall"):
            assert rc.flagged(new, scene[part]) < 0.002, (noise, part)
        assert rc.flagged(old, scene["road"]) > 0.02, "the literal threshold flags the far road"
        if noise:
            assert rc.flagged(old, scene["cars"]) > 0.02, "without the σ floor the noise tail of a car is flagged"
    for factor, size in ((2.0, 3), (0.5, 3), (1.3, 1)):
        scene = rc.road_scene(noise=0.01)  # 192×640: the farthest car has 238 px (a 3×3 cluster is 4 % of it)
        disp, planted = rc.plant_outliers(scene, factor, size)
        assert planted.sum() >= 4
        m = adaptive_outlier_mask(torch.from_numpy(disp)[None, None],
                                  region_index(torch.from_numpy(scene["labels"])[None], 4)).m_out
        assert rc.flagged(m, planted) > 0.9, (factor, size)
        assert rc.flagged(m, scene["cars"] & ~planted) < 0.01


# ----------------------------------------------------------------------------------------------- SRC


def test_src_lower_when_features_cluster_by_region() -> None:
    rng = np.random.default_rng(2)
    labels = torch.from_numpy(np.repeat(np.repeat(rng.integers(1, 6, (2, 4, 6)), 8, 1), 8, 2))  # 2×32×48
    directions = torch.nn.functional.normalize(torch.randn(2, 6, 16), dim=-1)  # one direction per region
    clustered = directions[torch.arange(2)[:, None, None], labels].permute(0, 3, 1, 2)
    clustered = clustered + 0.05 * torch.randn(2, 16, 32, 48)
    scattered = torch.randn(2, 16, 32, 48)
    gen = torch.Generator().manual_seed(0)
    loss_clustered = region_contrast(clustered, labels, gen, temperature=0.1, max_pixels=512)
    loss_scattered = region_contrast(scattered, labels, gen, temperature=0.1, max_pixels=512)
    assert float(loss_clustered) < 0.1 * float(loss_scattered)
    scattered.requires_grad_(True)
    region_contrast(scattered, labels, gen, max_pixels=512).backward()
    assert scattered.grad is not None and scattered.grad.abs().sum() > 0


def test_src_drops_small_regions_and_caps_samples() -> None:
    labels = torch.ones(1, 8, 8, dtype=torch.long)
    labels[0, 0, :3] = 2  # 3-pixel region: dropped with min_region_pixels 4
    feats = torch.randn(1, 4, 8, 8)
    gen = torch.Generator().manual_seed(0)
    only_one = region_contrast(feats, labels, gen, min_region_pixels=4)
    assert only_one is not None and abs(float(only_one)) < 1e-6, "a single surviving region has nothing to contrast"
    assert region_contrast(feats, torch.zeros_like(labels), gen) is None
    assert resize_labels(labels, (4, 4)).shape == (1, 4, 4)


# ---------------------------------------------------------------------------------------------- void


def test_void_pixels_never_contribute() -> None:
    rng = np.random.default_rng(3)
    labels = _random_partition(rng, 2, 24, 36, 5)
    void = (labels == 0)[:, None]
    assert void.any()
    d_t = torch.rand(2, 1, 24, 36) + 0.1
    d_s = torch.rand(2, 1, 24, 36) + 0.1
    pe = torch.rand(2, 1, 24, 36)
    feats = torch.randn(2, 8, 24, 36)
    index = region_index(labels)

    def terms(d_t: torch.Tensor, d_s: torch.Tensor, pe: torch.Tensor, feats: torch.Tensor) -> list[torch.Tensor]:
        arom = adaptive_outlier_mask(d_t, index)
        w_rel = object_reliability(pe, index)
        src = region_contrast(feats, labels, torch.Generator().manual_seed(5))
        return [arom.m_out[void], w_rel[void], regional_gaussian_likelihood(d_s, arom), src, arom.m_out[~void],
                (w_rel[~void] - 0.1)]

    base = terms(d_t, d_s, pe, feats)
    assert (base[0] == 1).all() and (base[1] == 1).all()
    # wild values at void pixels change nothing (except the image mean error, which uses every pixel)
    wild = lambda x: torch.where(void, x * 100 + 7, x)  # noqa: E731
    changed = terms(wild(d_t), wild(d_s), pe, torch.where(void.expand_as(feats), -feats * 50, feats))
    for a, b in zip(base[:5], changed[:5]):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------------ one training step


def test_rosam_recipe_trains_a_step_on_the_corridor(corridor: Path, tmp_path: Path) -> None:
    """The full recipe (felzenszwalb masks, frozen teacher + Φ_day, SRC, AROM, L_rgl, ORE) takes a finite step."""
    from robustdepth.configure import load_config
    from robustdepth.providers.masks import write_mask_cache
    from robustdepth.training.trainer import Trainer
    from tests.conftest import corridor_overrides

    # frozen models (random init exercises every path): Φ_day with depth + pose nets; the teacher, like
    # Syn2Real's Φ_syn, without a pose net, so ORE's warp takes Φ_day's poses (providers.rosam.ore_pose=auto)
    def frozen(name: str, *extra: str) -> Path:
        trainer = Trainer(load_config("monodepth2", [*corridor_overrides(corridor), *extra]), tmp_path / name)
        path = trainer.save()
        trainer.close()
        return path

    day = frozen("day")
    teacher = frozen("teacher", "losses.photometric.weight=0")
    assert "pose" not in torch.load(teacher, weights_only=True)["models"]
    cache = tmp_path / "masks"
    over = {"providers.masks.cache": cache, "providers.teacher.checkpoint": teacher,
            "providers.day_model.checkpoint": day, "model.init_checkpoint": teacher,
            "losses.syn2real_kl.weight": 0.0, "optim.max_steps": 1, "losses.rosam_src.max_pixels": 256}
    cfg = load_config("rosam", corridor_overrides(corridor, **over))
    write_mask_cache(cfg, cache, progress=False)
    trainer = Trainer(cfg, tmp_path / "student")
    logs = trainer.train_step(next(trainer._batches()))
    for name in ("rosam_distill", "rosam_src", "rosam_rgl"):
        assert np.isfinite(logs[f"loss/{name}"]) and logs[f"loss/{name}"] >= 0, name
    assert 0 < logs["rosam_distill/m_out"] <= 1 and 0.1 < logs["rosam_distill/w_rel"] <= 1.1
    assert logs["grad_norm"] > 0
    trainer.close()


def test_distillation_without_cst_needs_no_day_model() -> None:
    from robustdepth.configure import load_config
    from robustdepth.losses import LOSSES, LossSet

    cfg = load_config("all")
    assert not cfg.providers.day_model.enabled
    assert "day_model" not in LossSet(cfg).required_providers  # the combined recipe builds without Φ_day
    rosam = load_config("rosam")
    assert "day_model" in LOSSES["rosam_distill"](rosam.losses.rosam_distill, rosam).requires
