"""md4all-DD distillation and Syn2Real's reweighting + histogram prior, against hand-computed cases."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from robustdepth.configure import load_config
from robustdepth.data.base import color_key
from robustdepth.losses.distill import DistillLoss, relative_l1
from robustdepth.losses.syn2real import Syn2RealKLLoss, consistency_weight, histogram_kl
from robustdepth.networks import DepthOutput
from robustdepth.providers.histogram import normalise_histogram, soft_histogram
from robustdepth.providers.teacher import TeacherPrediction
from robustdepth.training.context import StepContext, StepState

H, W = 8, 16


class FixedProviders:
    """Stand-in for ProviderSet: hands out prepared provider outputs by name."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = values or {}

    def get(self, name: str, ctx: StepContext) -> Any:
        value = self.values[name]
        return value(ctx) if callable(value) else value


class SigmoidMaps(nn.Module):
    """A depth 'network' whose sigmoid outputs are learnable maps (one per scale), for toy optimisation."""

    def __init__(self, values: list[torch.Tensor]) -> None:
        super().__init__()
        self.logits = nn.ParameterList([nn.Parameter(torch.logit(v.clone())) for v in values])

    def forward(self, image: torch.Tensor) -> DepthOutput:
        disp = [torch.sigmoid(p).expand(image.shape[0], -1, -1, -1) for p in self.logits]
        feats = [image.mean(1, keepdim=True)] * 5
        return DepthOutput(disp=disp, features=[], encoder_features=feats)


def small_cfg(*overrides: str) -> Any:
    return load_config("monodepth2", ["model.scales=[0,1]", *overrides])


def make_ctx(net: nn.Module, providers: FixedProviders, batch_size: int = 1, cfg: Any = None,
             step: int = 0, extra: dict[str, Any] | None = None) -> StepContext:
    image = torch.rand(batch_size, 3, H, W, generator=torch.Generator().manual_seed(1))
    batch: dict[str, Any] = {color_key(0): image, color_key(0, aug=True): image, **(extra or {})}
    cfg = cfg or small_cfg()
    return StepContext(batch, net, None, providers, StepState(step, 10, step // 5, 5), cfg,
                       torch.Generator().manual_seed(0), torch.device("cpu"))


def teacher_prediction(sigmoids: list[float], cfg: Any) -> Any:
    """A provider callable that wraps constant teacher sigmoid maps per scale into a TeacherPrediction."""
    def make(ctx: StepContext) -> TeacherPrediction:
        disp = [torch.full((ctx.batch_size, 1, H // 2**k, W // 2**k), s) for k, s in enumerate(sigmoids)]
        out = DepthOutput(disp=disp, features=[], encoder_features=[torch.zeros(ctx.batch_size, 1, H, W)] * 5)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, cfg.model.min_depth, cfg.model.max_depth, "t")
    return make


def scaled(sigma: float, lo: float = 0.1, hi: float = 100.0) -> float:
    return 1 / hi + (1 / lo - 1 / hi) * sigma


def test_relative_l1_hand_case() -> None:
    d_s, d_t = torch.tensor([2.0, 4.0]), torch.tensor([1.0, 5.0])
    assert torch.allclose(relative_l1(d_s, d_t), torch.tensor([0.5, 0.25]))
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l1(d_s, d_t[:1])


def test_distill_loss_hand_case_all_scales() -> None:
    cfg = small_cfg()
    # student σ = 0.5 at scale 0 and 0.25 at scale 1; teacher σ = 0.25 at both → only scale 0 contributes.
    net = SigmoidMaps([torch.full((1, 1, H, W), 0.5), torch.full((1, 1, H // 2, W // 2), 0.25)])
    ctx = make_ctx(net, FixedProviders({"teacher": teacher_prediction([0.25, 0.25], cfg)}), cfg=cfg)
    value = DistillLoss(cfg.losses.distill, cfg)(ctx)
    expected = abs(scaled(0.5) - scaled(0.25)) / scaled(0.5) / 2
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert net.logits[0].grad is not None and net.logits[0].grad.abs().sum() > 0


def test_consistency_weight_range_value_and_no_grad() -> None:
    assert consistency_weight(torch.tensor([2.0]), torch.tensor([1.0])).item() == pytest.approx(math.exp(-0.5) + 1)
    d_syn = (torch.rand(4, 1, 5, 5) + 0.1).requires_grad_()
    d_day = torch.rand(4, 1, 5, 5) * 10 + 0.01
    w = consistency_weight(d_syn, d_day, beta=1.0, eps=1.0)
    assert not w.requires_grad
    assert bool((w >= 1).all()) and bool((w <= 2).all())  # (1, 2] analytically; exp may underflow to 1
    assert torch.equal(consistency_weight(d_day, d_day), torch.full_like(d_day, 2.0))
    # gradient flows to the student through the reweighted distillation, not through the weight
    student = (torch.rand(4, 1, 5, 5) + 0.1).requires_grad_()
    (w * relative_l1(student, d_syn)).mean().backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert d_syn.grad is None


def test_soft_histogram_mass_and_bin() -> None:
    # one depth exactly on centre 2 of linspace(0, 10, 11) (L = 1): that bin gets sig(1) − sig(−1); the sum
    # telescopes to sig((D − (lo − L/2))/(L/2)) − sig((D − (hi + L/2))/(L/2)) = sig(5) − sig(−17)
    counts = soft_histogram(torch.tensor([2.0]), bins=11, lo=0.0, hi=10.0)
    sig = torch.sigmoid
    assert counts[2].item() == pytest.approx((sig(torch.tensor(1.0)) - sig(torch.tensor(-1.0))).item(), rel=1e-5)
    assert counts.sum().item() == pytest.approx((sig(torch.tensor(5.0)) - sig(torch.tensor(-17.0))).item(), rel=1e-5)
    assert int(counts.argmax()) == 2


def test_histogram_kl_zero_for_identical_and_differentiable() -> None:
    depth = (torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 60 + 5).requires_grad_()
    p = normalise_histogram(soft_histogram(depth, 101, 3.5, 80.0))
    assert histogram_kl(p, p.detach()).item() == pytest.approx(0.0, abs=1e-9)
    p_day = normalise_histogram(soft_histogram(torch.full((50,), 20.0), 101, 3.5, 80.0))
    kl = histogram_kl(p, p_day)
    assert kl.item() > 0
    kl.backward()
    assert depth.grad is not None and torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_kl_term_without_prior_names_the_command() -> None:
    cfg = small_cfg("losses.syn2real_kl.weight=0.001")
    with pytest.raises(FileNotFoundError, match="priors histogram"):
        Syn2RealKLLoss(cfg.losses.syn2real_kl, cfg)
    cfg = small_cfg("losses.syn2real_kl.weight=0.001", "losses.syn2real_kl.prior_path=/nonexistent/day.json")
    with pytest.raises(FileNotFoundError, match="/nonexistent/day.json"):
        Syn2RealKLLoss(cfg.losses.syn2real_kl, cfg)


def _two_scale_maps(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, H, W, generator=g) * 0.8 + 0.1, torch.rand(1, 1, H // 2, W // 2, generator=g) * 0.8 + 0.1


def test_distill_native_resolution_compares_each_scale_at_its_own_size() -> None:
    """Default (official code): scale k of the student vs scale k of the teacher at 2^-k, non-constant maps."""
    cfg = small_cfg()
    assert cfg.losses.distill.resolution == "native"
    s0, s1 = _two_scale_maps(1)
    t0, t1 = _two_scale_maps(2)
    net = SigmoidMaps([s0, s1])

    def teacher(ctx: StepContext) -> TeacherPrediction:
        out = DepthOutput(disp=[t0, t1], features=[], encoder_features=[torch.zeros(1, 1, H, W)] * 5)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, 0.1, 100.0, "t")
    ctx = make_ctx(net, FixedProviders({"teacher": teacher}), cfg=cfg)
    value = DistillLoss(cfg.losses.distill, cfg)(ctx)

    def d(sig: torch.Tensor) -> torch.Tensor:
        return 1 / 100.0 + (1 / 0.1 - 1 / 100.0) * sig
    native = sum(float(((d(s) - d(t)).abs() / d(s)).mean()) for s, t in ((s0, t0), (s1, t1))) / 2
    assert value.item() == pytest.approx(native, rel=1e-5)
    # the upsampled form is an option, and differs on non-constant maps
    cfg_full = small_cfg("losses.distill.resolution=full")
    ctx = make_ctx(SigmoidMaps([s0, s1]), FixedProviders({"teacher": teacher}), cfg=cfg_full)
    full_value = DistillLoss(cfg_full.losses.distill, cfg_full)(ctx)

    def up(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
    full = (float(((d(s0) - d(t0)).abs() / d(s0)).mean())
            + float(((d(up(s1)) - d(up(t1))).abs() / d(up(s1))).mean())) / 2
    assert full_value.item() == pytest.approx(full, rel=1e-5)
    assert abs(full - native) > 1e-4


def test_distill_gradient_lowers_the_gap_and_teacher_is_detached() -> None:
    cfg = small_cfg()
    s0, s1 = _two_scale_maps(3)
    t0, t1 = (x.clone().requires_grad_() for x in _two_scale_maps(4))
    net = SigmoidMaps([s0, s1])

    def teacher(ctx: StepContext) -> TeacherPrediction:
        out = DepthOutput(disp=[t0, t1], features=[], encoder_features=[torch.zeros(1, 1, H, W)] * 5)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, 0.1, 100.0, "t")
    value = DistillLoss(cfg.losses.distill, cfg)(make_ctx(net, FixedProviders({"teacher": teacher}), cfg=cfg))
    value.backward()
    assert t0.grad is None and t1.grad is None
    with torch.no_grad():  # a small step along −∇ lowers the loss
        for p in net.logits:
            p -= 0.05 * p.grad
    again = DistillLoss(cfg.losses.distill, cfg)(make_ctx(net, FixedProviders({"teacher": teacher}), cfg=cfg))
    assert again.item() < value.item()


def test_distill_rejects_an_unknown_resolution() -> None:
    from robustdepth.config import ConfigError

    cfg = small_cfg("losses.distill.resolution=half")
    with pytest.raises(ConfigError, match="losses.distill.resolution"):
        DistillLoss(cfg.losses.distill, cfg)
