"""ACDepth: OGD ranking (labels, pairs, sign convention, the AND fix) and L_c feature consistency."""

from __future__ import annotations

import math

import pytest
import torch

from robustdepth.losses.acdepth import (
    FeatureConsistencyLoss,
    OGDRankLoss,
    feature_consistency,
    global_pairs,
    local_pairs,
    ordinal_labels,
    ranking_loss,
    uncertainty_map,
    valid_pairs,
    window_average,
)
from robustdepth.priors.depth_prior import RelativeDepthPrior
from robustdepth.training.context import StepState
from tests.test_distill import FixedProviders, H, SigmoidMaps, W, make_ctx, small_cfg, teacher_prediction


def test_ordinal_labels_and_ranking_loss_hand_case() -> None:
    s_a, s_b = torch.tensor([2.0, 1.0, 1.0]), torch.tensor([1.0, 2.0, 1.1])
    assert ordinal_labels(s_a, s_b, theta=0.15).tolist() == [-1.0, 1.0, 0.0]
    # ℓ = −1 (a closer): log(1 + exp(D_a − D_b)); ℓ = +1: log(1 + exp(D_a − D_b)·(−1)…); ℓ = 0 ignored
    d_a, d_b = torch.tensor([1.0, 1.0, 9.0]), torch.tensor([3.0, 3.0, 0.0])
    labels = torch.tensor([-1.0, 1.0, 0.0])
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(2.0))) / 2
    assert ranking_loss(d_a, d_b, labels).item() == pytest.approx(expected, rel=1e-6)
    assert ranking_loss(d_a, d_b, torch.zeros(3)).item() == 0.0


def test_uncertainty_and_window() -> None:
    u = uncertainty_map(torch.tensor([3.0]), torch.tensor([1.0]))
    assert u.item() == pytest.approx(0.5)
    ones = torch.ones(1, 1, 5, 5)
    win = window_average(ones, 5)
    assert win[0, 0, 2, 2].item() == pytest.approx(1.0)
    assert win[0, 0, 0, 0].item() == pytest.approx(9 / 25)  # zero padding biases borders low
    assert torch.equal(window_average(ones, 1), ones)


def test_local_pairs_take_uncertain_pixels_and_other_partners() -> None:
    u = torch.arange(2 * 20 * 20, dtype=torch.float32).reshape(2, 1, 20, 20)
    a, b = local_pairs(u, torch.Generator().manual_seed(0), quantile=0.95, keep_ratio=1.0, partner_ratio=0.5)
    flat = u.reshape(-1)
    threshold = torch.quantile(u.reshape(2, -1), 0.95, dim=1)
    image_b, image_a = b // 400, a // 400
    assert b.numel() == 2 * 20  # top 5 % of 400 pixels per image, all kept
    assert bool((flat[b] >= threshold[image_b]).all())
    assert bool((flat[a] < threshold[image_a]).all())
    assert torch.equal(image_a, image_b)  # partners come from the same image


def test_global_pairs_share_positions_across_the_batch() -> None:
    a, b = global_pairs(3, 32, 32, torch.Generator().manual_seed(0), ratio=0.05)
    n = a.numel() // 3
    assert n > 0 and a.numel() == b.numel() == 3 * n
    assert torch.equal(a[:n] + 1024, a[n:2 * n])
    assert torch.equal(b[:n] + 2048, b[2 * n:])
    assert 20 <= n <= 90  # ≈ 5 % of 1024 positions
    assert bool((a[:n] < 1024).all()) and bool((b[:n] < 1024).all())


def test_pairs_need_both_ends_valid() -> None:
    valid = torch.tensor([True, False, True])
    keep = valid_pairs(torch.tensor([0, 0, 1]), torch.tensor([1, 2, 1]), valid)
    assert keep.tolist() == [False, True, False]  # the official OR would keep the first pair too


def _ogd_setup(start_depth_sigma: float = 0.3):
    """A toy image: prior says the left half is twice as close as the right half."""
    cfg = small_cfg("losses.ogd_rank.weight=0.01", "losses.ogd_rank.global_ratio=0.5",
                    "losses.ogd_rank.partner_ratio=0.5", "losses.ogd_rank.keep_ratio=1.0")
    net = SigmoidMaps([torch.full((1, 1, H, W), start_depth_sigma), torch.full((1, 1, H // 2, W // 2), 0.3)])
    disparity = torch.ones(1, 1, H, W)
    disparity[..., : W // 2] = 2.0
    prior = RelativeDepthPrior(disparity, torch.ones_like(disparity, dtype=torch.bool), "toy")
    return cfg, net, prior


def test_ogd_sign_convention_closer_pixel_ends_with_smaller_depth() -> None:
    cfg, net, prior = _ogd_setup()
    term = OGDRankLoss(cfg.losses.ogd_rank, cfg)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for step in range(15):
        providers = FixedProviders({"teacher": teacher_prediction([0.5, 0.5], cfg), "depth_prior": prior})
        ctx = make_ctx(net, providers, cfg=cfg, step=step)
        loss, logs = term(ctx)
        assert logs["pairs"] > 0
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    depth = 1 / (0.01 + 9.99 * torch.sigmoid(net.logits[0].detach()))
    left, right = depth[..., 2:6, 2: W // 2 - 2].mean(), depth[..., 2:6, W // 2 + 2: -2].mean()
    assert left < right


def test_feature_consistency_hand_case_and_zero_when_features_agree() -> None:
    aug, clean, teacher = [torch.ones(2, 3, 4, 4)], [torch.zeros(2, 3, 4, 4)], [torch.zeros(2, 3, 4, 4)]
    translated = torch.tensor([True, False])
    # w1·|1−0| over M + w2·(|1−0| over M̄ + |1−0| over M) = 1 + 0.5·2 = 2
    assert feature_consistency(aug, clean, teacher, translated, 1.0, 0.5).item() == pytest.approx(2.0)
    feats = [torch.randn(2, c, 8 // 2**i + 1, 8 // 2**i + 1) for i, c in enumerate((4, 4, 8, 16, 32))]
    assert feature_consistency(feats, [f.clone() for f in feats], [f.clone() for f in feats],
                               translated).item() == 0.0
    # nothing translated: only the teacher branch on M̄ counts
    assert feature_consistency(aug, clean, teacher, torch.tensor([False, False]), 1.0, 0.5).item() == pytest.approx(0.5)


def test_feature_consistency_starts_after_its_epoch_or_fraction() -> None:
    cfg = small_cfg("losses.feature_consistency.weight=0.02", "losses.feature_consistency.start_epoch=2")
    term = FeatureConsistencyLoss(cfg.losses.feature_consistency, cfg)
    assert not term.active(StepState(step=10, total_steps=100, epoch=2, steps_per_epoch=5))
    assert term.active(StepState(step=15, total_steps=100, epoch=3, steps_per_epoch=5))
    cfg = small_cfg("losses.feature_consistency.weight=0.02", "losses.feature_consistency.start_fraction=0.64")
    term = FeatureConsistencyLoss(cfg.losses.feature_consistency, cfg)
    assert not term.active(StepState(step=63, total_steps=100, epoch=0, steps_per_epoch=1000))
    assert term.active(StepState(step=64, total_steps=100, epoch=0, steps_per_epoch=1000))
