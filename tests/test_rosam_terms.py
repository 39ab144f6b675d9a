"""RoSAMDepth / Syn2Real loss terms against independent computations: L_d (M_out·W_cst·W_rel), AROM's threshold,
L_rgl, SRC, ORE's inputs, what carries gradient, and how the two distillation terms combine their weights.

The terms run through their real ``forward`` on a small stand-in for the step context (only what they read),
so a mis-wired weight, a swapped argument or a wrong detach inside the term changes a number here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robustdepth.config import ConfigError
from robustdepth.data.base import color_key
from robustdepth.geometry import Pose
from robustdepth.losses.rosam import (
    RosamDistillConfig,
    RosamDistillLoss,
    RosamRglConfig,
    RosamRglLoss,
    RosamSrcConfig,
    RosamSrcLoss,
    region_contrast,
    regional_gaussian_likelihood,
)
from robustdepth.losses.syn2real import Syn2RealDistillConfig, Syn2RealDistillLoss, histogram_kl
from robustdepth.providers.masks import nearest_resize
from robustdepth.providers.rosam import (
    AromMaps,
    RegionPriors,
    RosamConfig,
    adaptive_outlier_mask,
    min_photometric_error,
    region_index,
    resize_labels,
)
from robustdepth.training.context import StepContext

B, H, W = 2, 6, 8
SCALES = [0, 1]


class FakeTeacher:
    """A frozen model's prediction: fixed scaled disparities per scale, optional pose net."""

    def __init__(self, disps: list[torch.Tensor], has_pose: bool = True, name: str = "teacher") -> None:
        self.disps, self.has_pose, self.source = disps, has_pose, name
        self.pose_calls: list[int] = []

    def scaled_disp(self, k: int) -> torch.Tensor:
        return self.disps[k]

    def depth(self, k: int) -> torch.Tensor:
        return 1.0 / self.disps[k]

    def pose(self, frame_id: int) -> Pose:
        self.pose_calls.append(frame_id)
        m = torch.eye(4).repeat(B, 1, 1)
        m[:, 0, 3] = 0.1 * frame_id
        return Pose(m)


class FakeCtx:
    """Only what the rosam/syn2real terms read from a StepContext."""

    def __init__(self, provided: dict[str, Any], student: list[torch.Tensor], day_model: bool = True) -> None:
        self.provided, self.student = provided, student
        self.scales, self.device = SCALES, torch.device("cpu")
        self.cfg = OmegaConf.create({"providers": {"day_model": {"enabled": day_model}}})

    def provide(self, name: str) -> Any:
        return self.provided[name]

    def scaled_disp_full(self, view: str, k: int, grad: bool = True) -> torch.Tensor:
        return self.student[k]


def _maps(seed: int) -> dict[str, Any]:
    """Non-constant teacher/day/student disparities per scale, M_out and W_rel with mixed rows."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda lo, hi: lo + (hi - lo) * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)  # noqa: E731
    teacher = [rand(0.05, 0.6) for _ in SCALES]
    day = [rand(0.05, 0.6) for _ in SCALES]
    student = [rand(0.05, 0.6).requires_grad_(True) for _ in SCALES]
    m_out = rand(0.0, 1.0)
    m_out[1] = 1.0  # second image: no outliers (a "clean" row)
    w_rel = rand(0.1, 1.1)
    return {"teacher": teacher, "day": day, "student": student, "m_out": m_out, "w_rel": w_rel}


def _distill_ctx(m: dict[str, Any], day_model: bool = True) -> FakeCtx:
    arom = AromMaps(m["m_out"], torch.zeros_like(m["m_out"]), torch.ones_like(m["m_out"]),
                    torch.ones_like(m["m_out"], dtype=torch.bool), torch.zeros_like(m["m_out"]))
    priors = SimpleNamespace(arom=arom, w_rel=m["w_rel"])
    return FakeCtx({"teacher": FakeTeacher(m["teacher"]), "day_model": FakeTeacher(m["day"]), "rosam": priors},
                   m["student"], day_model)


def _hand_l_d(m: dict[str, Any], use_arom: bool, use_ore: bool, use_cst: bool, beta: float = 1.0,
              eps: float = 1.0) -> float:
    """Pixel loop in numpy: (1/K) Σ_k (1/N) Σ_p M_out·W_cst·W_rel·|d_s − d_t|/d_s."""
    total = 0.0
    for k in range(len(SCALES)):
        t, d, s = (m["teacher"][k].numpy(), m["day"][k].numpy(), m["student"][k].detach().numpy())
        acc = 0.0
        for idx in np.ndindex(t.shape):
            w = 1.0
            if use_arom:
                w *= float(m["m_out"][idx])
            if use_ore:
                w *= float(m["w_rel"][idx])
            if use_cst:
                w *= np.exp(-beta * abs(t[idx] - d[idx]) / t[idx]) + eps
            acc += w * abs(s[idx] - t[idx]) / s[idx]
        total += acc / t.size
    return total / len(SCALES)


def _rosam_distill(**flags: Any) -> RosamDistillLoss:
    return RosamDistillLoss(OmegaConf.structured(RosamDistillConfig(weight=1.0, **flags)), None)


@pytest.mark.parametrize("use_arom,use_ore,use_cst", [(True, True, True), (True, False, True), (False, True, True),
                                                      (True, True, False), (False, False, True)])
def test_rosam_distill_equals_hand_computed_l_d(use_arom: bool, use_ore: bool, use_cst: bool) -> None:
    m = _maps(0)
    value, logs = _rosam_distill(use_arom=use_arom, use_ore=use_ore, use_cst=use_cst)(_distill_ctx(m))
    assert float(value.detach()) == pytest.approx(_hand_l_d(m, use_arom, use_ore, use_cst), rel=1e-10)
    if use_arom:
        assert logs["m_out"] == pytest.approx(float(m["m_out"].mean()))


def test_rosam_distill_cst_settings_are_used() -> None:
    m = _maps(4)
    term = _rosam_distill(cst_beta=3.0, cst_eps=0.25)
    value = float(term(_distill_ctx(m))[0].detach())
    assert value == pytest.approx(_hand_l_d(m, True, True, True, 3.0, 0.25), rel=1e-10)


def test_syn2real_distill_equals_hand_computed_and_rosam_reduces_to_it() -> None:
    """L_cd = the same kernel with W_cst only; rosam_distill without AROM and ORE is exactly Syn2Real's L_cd,
    and each of M_out, W_rel multiplies on top of it pixel-wise."""
    m = _maps(1)
    ctx = _distill_ctx(m)
    s2r, logs = Syn2RealDistillLoss(OmegaConf.structured(Syn2RealDistillConfig(weight=1.0, beta=2.0, eps=0.5)),
                                    None)(ctx)
    assert float(s2r.detach()) == pytest.approx(_hand_l_d(m, False, False, True, 2.0, 0.5), rel=1e-10)
    assert 0.5 < logs["w_cst"] <= 1.5
    plain = Syn2RealDistillLoss(OmegaConf.structured(Syn2RealDistillConfig(weight=1.0)), None)(ctx)[0]
    rosam_plain = _rosam_distill(use_arom=False, use_ore=False)(ctx)[0]
    assert float(rosam_plain.detach()) == pytest.approx(float(plain.detach()), rel=1e-12)
    # with every M_out = W_rel = 1 the full term is Syn2Real's too (the weights multiply, nothing else changes)
    ones = dict(m, m_out=torch.ones_like(m["m_out"]), w_rel=torch.ones_like(m["w_rel"]))
    assert float(_rosam_distill()(_distill_ctx(ones))[0].detach()) == pytest.approx(float(plain.detach()), rel=1e-12)


def test_l_d_gradient_flows_to_the_student_only_and_towards_the_teacher() -> None:
    m = _maps(2)
    for t in m["teacher"] + m["day"]:
        t.requires_grad_(True)
    m["m_out"].requires_grad_(True)
    m["w_rel"].requires_grad_(True)
    loss = _rosam_distill()(_distill_ctx(m))[0]
    loss.backward()
    n = B * H * W
    for k in range(len(SCALES)):
        s, t, d = m["student"][k].detach(), m["teacher"][k].detach(), m["day"][k].detach()
        w = m["m_out"].detach() * m["w_rel"].detach() * (torch.exp(-(t - d).abs() / t) + 1.0)
        # d/ds of w·|s − t|/s = w·(sign(s − t)/s − |s − t|/s²) = w·t·sign(s − t)/s²
        expected = w * t * torch.sign(s - t) / s**2 / n / len(SCALES)
        torch.testing.assert_close(m["student"][k].grad, expected, rtol=1e-9, atol=1e-12)
        step = -m["student"][k].grad  # gradient descent moves each student pixel towards its teacher
        assert bool(((step * (t - s)) >= 0).all())
    for frozen in [*m["teacher"], *m["day"], m["m_out"], m["w_rel"]]:
        assert frozen.grad is None, "teacher, Φ_day and the weights carry no gradient"


# ------------------------------------------------------------------------------------------------ AROM


def _labels(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 4, size=(B, 3, 4)), 2, 1).repeat(2, 2)  # B×6×8, 0 = void
    labels[0, :2, :2] = 7  # a region of exactly four pixels
    return torch.from_numpy(labels)


def _numpy_arom(d: np.ndarray, labels: np.ndarray, tau0: float, lam: float, kappa: float, eps: float, floor: float,
                units: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference AROM: per image and region μ, σ; σ' = max(σ, floor·μ) + eps; τ; δ; M_out."""
    m_out, mu_px, sig_px, tau_px = np.ones_like(d), d.copy(), np.ones_like(d), np.full_like(d, tau0)
    for b in range(d.shape[0]):
        for r in np.unique(labels[b]):
            if r == 0:
                continue
            sel = labels[b] == r
            mu, sigma = d[b][sel].mean(), d[b][sel].std()
            sig = max(sigma, floor * abs(mu)) + eps
            tau = tau0 + lam * (sigma / abs(mu) if units == "relative" else sigma)
            delta = np.abs(d[b][sel] - mu) / sig
            s1 = 1 / (1 + np.exp(-(delta - tau)))
            m_out[b][sel] = 1 - 1 / (1 + np.exp(-(s1 - 0.5) / kappa))
            mu_px[b][sel], sig_px[b][sel], tau_px[b][sel] = mu, sig, tau
    return m_out, mu_px, sig_px, tau_px


@pytest.mark.parametrize("units,lam,floor", [("relative", 4.0, 0.05), ("relative", 2.5, 0.0),
                                             ("disparity", 1.0, 0.0), ("disparity", 3.0, 0.2)])
def test_arom_threshold_and_mask_equal_independent_computation(units: str, lam: float, floor: float) -> None:
    labels = _labels(0)
    g = torch.Generator().manual_seed(3)
    d = 0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    d[0, 0, 3, 5] = 2.0  # a planted outlier
    arom = adaptive_outlier_mask(d, region_index(labels), tau0=1.5, lam=lam, kappa=0.05, sigma_eps=1e-6,
                                 sigma_floor=floor, threshold_units=units)
    ref = _numpy_arom(d[:, 0].numpy(), labels.numpy(), 1.5, lam, 0.05, 1e-6, floor, units)
    for got, want in zip((arom.m_out, arom.mu, arom.sigma, arom.tau), ref):
        np.testing.assert_allclose(got[:, 0].numpy(), want, rtol=1e-9, atol=1e-12)
    assert (arom.tau[arom.valid] > 1.5).all(), "the adaptive term raises τ above τ0 in non-constant regions"


def test_arom_runs_on_the_teacher_not_the_student() -> None:
    labels = _labels(1)
    g = torch.Generator().manual_seed(5)
    teacher = 0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    teacher[1, 0, 4, 6] = 3.0
    student = 0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    cfg = OmegaConf.structured(RosamConfig())
    ctx = SimpleNamespace(provide=lambda name: {"masks": labels, "teacher": FakeTeacher([teacher])}[name],
                          scaled_disp_full=lambda *a, **k: student)
    priors = RegionPriors(ctx, cfg)  # type: ignore[arg-type]
    want = adaptive_outlier_mask(teacher, region_index(labels, cfg.min_region_pixels), cfg.tau0, cfg.lam, cfg.kappa,
                                 cfg.sigma_eps, cfg.sigma_floor, cfg.threshold_units)
    torch.testing.assert_close(priors.arom.m_out, want.m_out)
    torch.testing.assert_close(priors.arom.mu, want.mu)


def test_arom_config_errors_are_config_errors() -> None:
    from robustdepth.providers.rosam import RosamPriors

    root = OmegaConf.create({"providers": {"masks": {"enabled": True}, "teacher": {"enabled": True}}})
    for bad in ({"threshold_units": "metres"}, {"ore_pose": "nobody"}, {"sigma_floor": -1.0}, {"kappa": 0.0}):
        with pytest.raises(ConfigError):
            RosamPriors(OmegaConf.structured(RosamConfig(**bad)), root)
    with pytest.raises(ConfigError, match="theta"):
        adaptive_outlier_mask(torch.ones(1, 1, 2, 2), region_index(torch.ones(1, 2, 2, dtype=torch.long)),
                              threshold_units="theta")


# ----------------------------------------------------------------------------------------------- L_rgl


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.3])
def test_l_rgl_equals_independent_computation_and_its_gradient(floor: float) -> None:
    labels = _labels(2)
    g = torch.Generator().manual_seed(7)
    d_t = 0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    d_t[0, 0, 2, 3] = 1.5
    d_s = (0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)).requires_grad_(True)
    arom = adaptive_outlier_mask(d_t, region_index(labels), sigma_floor=floor)
    m_out, mu, sig, _ = _numpy_arom(d_t[:, 0].numpy(), labels.numpy(), 2.0, 6.0, 0.05, 1e-6, floor, "relative")
    valid = labels.numpy() > 0
    s = d_s.detach()[:, 0].numpy()
    per_pixel = np.where(valid, (1 - m_out) * (s - mu) ** 2 / sig**2, 0.0)
    loss = regional_gaussian_likelihood(d_s, arom)
    assert float(loss.detach()) == pytest.approx(per_pixel.mean(), rel=1e-9)
    loss.backward()
    want_grad = np.where(valid, 2 * (1 - m_out) * (s - mu) / sig**2, 0.0) / s.size
    np.testing.assert_allclose(d_s.grad[:, 0].numpy(), want_grad, rtol=1e-8, atol=1e-14)


def test_rosam_rgl_term_averages_scales_of_the_student() -> None:
    labels = _labels(3)
    g = torch.Generator().manual_seed(8)
    d_t = 0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    d_t[1, 0, 1, 1] = 2.0
    students = [(0.1 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)).requires_grad_(True)
                for _ in SCALES]
    arom = adaptive_outlier_mask(d_t, region_index(labels))
    ctx = FakeCtx({"rosam": SimpleNamespace(arom=arom)}, students)
    value = RosamRglLoss(OmegaConf.structured(RosamRglConfig(weight=1.0)), None)(ctx)
    want = sum(regional_gaussian_likelihood(s, arom) for s in students) / len(students)
    assert float(value.detach()) == pytest.approx(float(want.detach()), rel=1e-12)
    value.backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in students), "L_rgl trains the student"


# ------------------------------------------------------------------------------------------------- SRC


def _reference_src(features: torch.Tensor, labels: torch.Tensor, temperature: float, normalise: bool) -> torch.Tensor:
    """Per-image loop: unit features, re-normalised prototypes, −log softmax of the own prototype, ÷ log R."""
    losses = []
    for b in range(features.shape[0]):
        f = features[b].flatten(1).T
        f = f / f.norm(dim=1, keepdim=True)
        lab = labels[b].flatten()
        regions = [r for r in lab.unique().tolist() if r != 0]
        protos = torch.stack([f[lab == r].mean(0) for r in regions])
        protos = protos / protos.norm(dim=1, keepdim=True)
        logits = f @ protos.T / temperature
        for p in range(f.shape[0]):
            if lab[p] == 0:
                continue
            ce = -torch.log_softmax(logits[p], 0)[regions.index(int(lab[p]))]
            losses.append(ce / (np.log(len(regions)) if normalise and len(regions) > 1 else 1.0))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("normalise", [True, False])
def test_src_equals_independent_infonce(normalise: bool) -> None:
    g = torch.Generator().manual_seed(9)
    labels = torch.from_numpy(np.repeat(np.repeat(np.random.default_rng(4).integers(0, 5, (B, 3, 4)), 2, 1), 2, 2))
    labels[1] = torch.where(labels[1] > 2, 1, 2)  # image 2: two regions, image 1: up to four (+ void)
    scale = 0.2 + 5 * torch.rand(B, 1, H, W, generator=g)  # features of very different norms
    feats = (torch.randn(B, 5, H, W, generator=g) * scale).requires_grad_(True)
    feats_ref = feats.detach().clone().requires_grad_(True)
    got = region_contrast(feats, labels, torch.Generator().manual_seed(0), temperature=0.2, max_pixels=10_000,
                          min_region_pixels=1, normalise_by_regions=normalise)
    want = _reference_src(feats_ref, labels, 0.2, normalise)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    got.backward()
    want.backward()
    torch.testing.assert_close(feats.grad, feats_ref.grad, rtol=1e-4, atol=1e-7)


def test_src_normalisation_makes_chance_level_one_whatever_the_region_count() -> None:
    g = torch.Generator().manual_seed(10)
    for regions in (4, 40):
        labels = (torch.arange(H * 10 * W * 10).reshape(1, H * 10, W * 10) % regions) + 1
        feats = torch.randn(1, 64, H * 10, W * 10, generator=g)
        value = region_contrast(feats, labels, torch.Generator().manual_seed(0), temperature=1e3, max_pixels=10_000)
        assert float(value) == pytest.approx(1.0, abs=0.02), regions  # InfoNCE at chance = log R, ÷ log R


def test_src_term_resizes_masks_by_centre_and_trains_the_student_features() -> None:
    g = torch.Generator().manual_seed(11)
    labels = torch.from_numpy(np.repeat(np.repeat(np.random.default_rng(5).integers(1, 4, (B, 3, 4)), 4, 1), 4, 2))
    feats = [torch.randn(B, 4, 12, 16, generator=g).requires_grad_(True),
             torch.randn(B, 4, 6, 8, generator=g).requires_grad_(True)]
    ctx = SimpleNamespace(provide=lambda name: labels, depth=lambda view: SimpleNamespace(features=feats),
                          scales=SCALES, generator=torch.Generator().manual_seed(1))
    root = OmegaConf.create({"model": {"scales": SCALES}})
    term = RosamSrcLoss(OmegaConf.structured(RosamSrcConfig(weight=1.0, scales=[0, 1], min_region_pixels=1)), root)
    value = term(ctx)
    want = [region_contrast(f, nearest_resize(labels, *f.shape[-2:]), torch.Generator().manual_seed(1), 0.1, 4096, 1)
            for f in feats]
    assert float(value.detach()) == pytest.approx(float(torch.stack(want).mean().detach()), rel=1e-6)
    value.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats), "SRC trains the student's features"
    with pytest.raises(ConfigError, match="rosam_src.scales"):
        RosamSrcLoss(OmegaConf.structured(RosamSrcConfig(weight=1.0, scales=[0, 5])), root)


def test_resize_labels_samples_cell_centres() -> None:
    labels = torch.arange(64).reshape(1, 8, 8)
    small = resize_labels(labels, (2, 2))
    assert small.tolist() == [[[18, 22], [50, 54]]]  # rows/cols 2 and 6: the centres of the 4×4 cells
    legacy = torch.nn.functional.interpolate(labels[:, None].float(), size=(2, 2), mode="nearest")[:, 0].long()
    assert not torch.equal(small, legacy), "legacy nearest takes the top-left pixel of each cell"
    big = torch.from_numpy(np.random.default_rng(6).integers(0, 9, (2, 13, 21)))
    for size in ((5, 7), (26, 42), (13, 10)):
        np.testing.assert_array_equal(resize_labels(big, size).numpy(), nearest_resize(big.numpy(), *size))


# ------------------------------------------------------------------------------------------------- ORE


def _ore_ctx(teacher: FakeTeacher, student_depth: torch.Tensor, day: FakeTeacher | None) -> SimpleNamespace:
    g = torch.Generator().manual_seed(12)
    colors = {f: torch.rand(B, 3, H, W, generator=g) for f in (0, -1, 1)}
    K = torch.tensor([[4.0, 0, W / 2], [0, 4.0, H / 2], [0, 0, 1]]).repeat(B, 1, 1)
    from robustdepth.geometry import Camera

    provided = {"teacher": teacher, "day_model": day}
    student_pose = []

    def pose(f: int) -> Pose:
        student_pose.append(f)
        return teacher.pose(f)
    return SimpleNamespace(provide=lambda n: provided[n], color=lambda f: colors[f], source_ids=[-1, 1],
                           camera=lambda s: Camera(K), depth_full=lambda *a, **k: student_depth, pose=pose,
                           colors=colors, student_pose=student_pose,
                           cfg=OmegaConf.create({"providers": {"day_model": {"enabled": day is not None}}}))


def test_ore_warps_with_the_teacher_depth_and_pose() -> None:
    g = torch.Generator().manual_seed(13)
    t_disp = 0.1 + torch.rand(B, 1, H, W, generator=g)
    student_depth = 1.0 / (0.1 + torch.rand(B, 1, H, W, generator=g))
    teacher = FakeTeacher([t_disp], has_pose=True)
    ctx = _ore_ctx(teacher, student_depth, None)
    priors = RegionPriors(ctx, OmegaConf.structured(RosamConfig()))  # type: ignore[arg-type]
    want = min_photometric_error(ctx.colors[0], [ctx.colors[-1], ctx.colors[1]], 1.0 / t_disp,
                                 [teacher.pose(-1), teacher.pose(1)], ctx.camera(0))
    torch.testing.assert_close(priors.photometric, want)
    wrong = min_photometric_error(ctx.colors[0], [ctx.colors[-1], ctx.colors[1]], student_depth,
                                  [teacher.pose(-1), teacher.pose(1)], ctx.camera(0))
    assert not torch.allclose(priors.photometric, wrong)
    assert not ctx.student_pose, "ore_pose=auto with a posed teacher never asks the student's pose net"


def test_ore_pose_auto_takes_phi_day_and_errors_clearly_without_any_pose_net() -> None:
    g = torch.Generator().manual_seed(14)
    t_disp = 0.1 + torch.rand(B, 1, H, W, generator=g)
    teacher, day = FakeTeacher([t_disp], has_pose=False), FakeTeacher([t_disp], has_pose=True, name="day")
    priors = RegionPriors(_ore_ctx(teacher, 1.0 / t_disp, day), OmegaConf.structured(RosamConfig()))  # type: ignore
    assert priors.pose_source() == "day_model"
    priors.pose(1)
    assert day.pose_calls == [1] and not teacher.pose_calls
    alone = RegionPriors(_ore_ctx(teacher, 1.0 / t_disp, None), OmegaConf.structured(RosamConfig()))  # type: ignore
    with pytest.raises(ConfigError, match="ore_pose=auto.*no pose network"):
        alone.pose(1)
    day.has_pose = False
    both = RegionPriors(_ore_ctx(teacher, 1.0 / t_disp, day), OmegaConf.structured(RosamConfig()))  # type: ignore
    with pytest.raises(ConfigError, match="day_model"):
        both.pose(-1)


# ---------------------------------------------------------------------------------------------- Syn2Real KL


def test_histogram_kl_is_finite_with_empty_prior_bins_and_matches_kl_div() -> None:
    p_adv = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    p_day = torch.tensor([0.0, 0.5, 0.0, 0.5], dtype=torch.float64)
    value = histogram_kl(p_adv, p_day)
    assert torch.isfinite(value)
    want = (0.5 * np.log(0.5 / 0.2) + 0.5 * np.log(0.5 / 0.4)) / 4
    assert float(value) == pytest.approx(want, rel=1e-12)
    ref = (p_day * (p_day.log() - p_adv.log())).nan_to_num(0.0).mean()  # F.kl_div's 'mean', 0·log 0 = 0
    assert float(value) == pytest.approx(float(ref), rel=1e-12)


# ------------------------------------------------------------------------------------- frozen-model input


@pytest.mark.parametrize("active", [True, False])
def test_sees_degraded_follows_the_s_step_gate(active: bool) -> None:
    from robustdepth.providers.teacher import Teacher

    clean, degraded = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    ctx = SimpleNamespace(degraded_active=active, batch={"degraded": degraded, color_key(0): clean},
                          image=lambda view: {"clean": clean}[view], color=lambda frame_id: clean)
    ctx.frozen_image = lambda degraded, daytime_norm=False: StepContext.frozen_image(ctx, degraded, daytime_norm)
    me = SimpleNamespace(cfg=SimpleNamespace(sees="degraded"), name="teacher", daytime_norm=False)
    seen = Teacher._image(me, ctx)  # type: ignore[arg-type]
    assert seen is (degraded if active else clean), "on a gated (clean) step the teacher labels the clean frame"
    me.cfg.sees = "clean"
    assert Teacher._image(me, ctx) is clean  # type: ignore[arg-type]
