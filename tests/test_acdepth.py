"""ACDepth: OGD ranking (labels, pairs, sign convention, the AND fix) and L_c feature consistency."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustdepth.data.base import color_key
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
from robustdepth.networks import DepthOutput
from robustdepth.providers.depth_prior import RelativeDepthPrior
from robustdepth.providers.teacher import TeacherPrediction
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


# -- the OGD term and L_c through their forward passes, against independent computations --------------------

def _student_depth(sigma: torch.Tensor, lo: float = 0.1, hi: float = 100.0) -> torch.Tensor:
    return 1.0 / (1 / hi + (1 / lo - 1 / hi) * sigma)


def _box_average_by_hand(depth: torch.Tensor, k: int) -> torch.Tensor:
    """k×k mean with zero padding (count includes the padding), one pixel at a time."""
    h, w = depth.shape[-2:]
    out = torch.zeros_like(depth)
    r = k // 2
    for i in range(h):
        for j in range(w):
            window = depth[:, :, max(0, i - r): i + r + 1, max(0, j - r): j + r + 1]
            out[:, :, i, j] = window.sum(dim=(-1, -2)) / (k * k)
    return out


def _ogd_world(theta: float = 0.15):
    """Non-constant student, teacher and prior maps on 2 images (local and global pairs both exist)."""
    g = torch.Generator().manual_seed(5)
    cfg = small_cfg("losses.ogd_rank.weight=0.01", "losses.ogd_rank.keep_ratio=1.0",
                    "losses.ogd_rank.global_ratio=0.2", "losses.ogd_rank.quantile=0.75",
                    "losses.ogd_rank.partner_ratio=0.5", f"losses.ogd_rank.theta={theta}")
    student = torch.rand(1, 1, H, W, generator=g) * 0.6 + 0.2
    net = SigmoidMaps([student, torch.full((1, 1, H // 2, W // 2), 0.3)])
    teacher_sigma = torch.rand(2, 1, H, W, generator=g) * 0.6 + 0.2
    rows = torch.arange(H, dtype=torch.float32).view(1, 1, H, 1)
    disparity = (1.0 + rows + torch.rand(2, 1, H, W, generator=g)).expand(2, 1, H, W).clone()  # closer at the bottom
    prior = RelativeDepthPrior(disparity, torch.ones_like(disparity, dtype=torch.bool), "toy")

    def teacher(ctx):
        out = DepthOutput(disp=[teacher_sigma, teacher_sigma[..., ::2, ::2]], features=[],
                          encoder_features=[torch.zeros(2, 1, H, W)] * 5)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, cfg.model.min_depth, cfg.model.max_depth, "t")
    return cfg, net, student, teacher_sigma, prior, teacher


def test_ogd_forward_matches_an_independent_computation_with_local_and_global_pairs() -> None:
    cfg, net, student, teacher_sigma, prior, teacher = _ogd_world()
    ctx = make_ctx(net, FixedProviders({"teacher": teacher, "depth_prior": prior}), batch_size=2, cfg=cfg)
    loss, logs = OGDRankLoss(cfg.losses.ogd_rank, cfg)(ctx)
    # independent: the same generator stream, U on depth, labels from the prior by hand, 5×5 box by hand
    d_s = _student_depth(student).expand(2, 1, H, W)
    d_t = _student_depth(teacher_sigma)
    u = (d_s - d_t).abs() / (d_s + d_t)
    g = torch.Generator().manual_seed(0)
    a_loc, b_loc = local_pairs(u, g, 0.75, 1.0, 0.5)
    a_glob, b_glob = global_pairs(2, H, W, g, 0.2)
    assert a_loc.numel() > 0 and a_glob.numel() > 0
    assert logs["local_pairs"] == a_loc.numel()
    s = prior.disparity.reshape(-1)
    box = _box_average_by_hand(d_s, 5).reshape(-1)
    terms = []
    for ia, ib in zip(torch.cat([a_loc, a_glob]).tolist(), torch.cat([b_loc, b_glob]).tolist(), strict=True):
        ratio = float(s[ia] / s[ib])
        label = -1.0 if ratio >= 1.15 else (1.0 if 1 / ratio > 1.15 else 0.0)
        if label:
            terms.append(math.log1p(math.exp(-label * float(box[ia] - box[ib]))))
    assert logs["pairs"] == len(terms) > 0
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_ogd_local_pairs_sit_where_student_and_teacher_disagree() -> None:
    """U must be |D_S − D_T|/(D_S + D_T): the uncertain ends of local pairs lie in the region where they differ."""
    cfg = small_cfg("losses.ogd_rank.weight=0.01", "losses.ogd_rank.keep_ratio=1.0", "losses.ogd_rank.quantile=0.8",
                    "losses.ogd_rank.partner_ratio=1.0", "losses.ogd_rank.global_ratio=0.0")
    student = torch.full((1, 1, H, W), 0.5)
    net = SigmoidMaps([student, torch.full((1, 1, H // 2, W // 2), 0.5)])
    teacher_sigma = torch.full((1, 1, H, W), 0.5)
    teacher_sigma[..., :2, :] = 0.9  # disagreement only in the top two rows (25 % of the image)

    def teacher(ctx):
        out = DepthOutput(disp=[teacher_sigma, teacher_sigma[..., ::2, ::2]], features=[],
                          encoder_features=[torch.zeros(1, 1, H, W)] * 5)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, cfg.model.min_depth, cfg.model.max_depth, "t")
    seen: list[torch.Tensor] = []

    def spy(s_a: torch.Tensor, s_b: torch.Tensor, theta: float = 0.15) -> torch.Tensor:
        seen.append(s_b)
        return ordinal_labels(s_a, s_b, theta)
    rows = torch.arange(H, dtype=torch.float32).view(1, 1, H, 1).expand(1, 1, H, W) + 1.0
    prior = RelativeDepthPrior(rows.clone(), torch.ones_like(rows, dtype=torch.bool), "rows")
    ctx = make_ctx(net, FixedProviders({"teacher": teacher, "depth_prior": prior}), cfg=cfg)
    import robustdepth.losses.acdepth as acdepth
    original = acdepth.ordinal_labels
    acdepth.ordinal_labels = spy
    try:
        _, logs = OGDRankLoss(cfg.losses.ogd_rank, cfg)(ctx)
    finally:
        acdepth.ordinal_labels = original
    assert logs["local_pairs"] > 0
    assert set(seen[0].tolist()) <= {1.0, 2.0}  # prior value = row + 1: the uncertain ends are rows 0–1 only


class FeatureNet(nn.Module):
    """Depth 'network' whose five encoder levels are a·pool(image) (one learnable scalar a), for L_c checks."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.5))

    def forward(self, image: torch.Tensor) -> DepthOutput:
        feats = [self.a * F.avg_pool2d(image, 2 ** (i % 2 + 1)) for i in range(5)]
        disp = [torch.sigmoid(image.mean(1, keepdim=True)), torch.sigmoid(F.avg_pool2d(image.mean(1, keepdim=True), 2))]
        return DepthOutput(disp=disp, features=[], encoder_features=feats)


def test_feature_consistency_forward_matches_hand_computation_with_its_clean_target() -> None:
    cfg = small_cfg("losses.feature_consistency.weight=0.02", "losses.feature_consistency.start_fraction=0.0")
    g = torch.Generator().manual_seed(3)
    clean, clean_aug, degraded_aug = (torch.rand(2, 3, H, W, generator=g) for _ in range(3))
    teacher_feats = [torch.rand(2, 3, H // 2 ** (i % 2 + 1), W // 2 ** (i % 2 + 1), generator=g) for i in range(5)]

    def teacher(ctx):
        out = DepthOutput(disp=[torch.full((2, 1, H, W), 0.5)] * 2, features=[], encoder_features=teacher_feats)
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, 0.1, 100.0, "t")
    net = FeatureNet()
    batch = {"degraded_aug": degraded_aug, "degraded": degraded_aug, "is_degraded": torch.tensor([True, False])}
    ctx = make_ctx(net, FixedProviders({"teacher": teacher}), batch_size=2, cfg=cfg, extra=batch)
    ctx.batch[color_key(0)], ctx.batch[color_key(0, aug=True)] = clean, clean_aug
    loss = FeatureConsistencyLoss(cfg.losses.feature_consistency, cfg)(ctx)
    # by hand: row 0 (translated) sees degraded_aug, row 1 sees clean_aug; the clean target is a·pool(clean)
    a = 1.5
    expected = 0.0
    for i in range(5):
        k = 2 ** (i % 2 + 1)
        inp = torch.stack([F.avg_pool2d(degraded_aug[0:1], k)[0], F.avg_pool2d(clean_aug[1:2], k)[0]]) * a
        tgt_clean = F.avg_pool2d(clean, k) * a
        w1 = (inp[0] - tgt_clean[0]).abs().mean()
        w2 = (inp[1] - teacher_feats[i][1]).abs().mean() + (inp[0] - teacher_feats[i][0]).abs().mean()
        expected += float(1.0 * w1 + 0.5 * w2)
    assert loss.item() == pytest.approx(expected / 5, rel=1e-5)
    # the clean pass is a detached target: d/da counts only the input pass
    loss.backward()
    a_var = torch.tensor(1.5, requires_grad=True)
    hand = 0.0
    for i in range(5):
        k = 2 ** (i % 2 + 1)
        inp = torch.stack([F.avg_pool2d(degraded_aug[0:1], k)[0], F.avg_pool2d(clean_aug[1:2], k)[0]]) * a_var
        tgt_clean = (F.avg_pool2d(clean, k) * a_var).detach()
        hand = hand + (inp[0] - tgt_clean[0]).abs().mean() + 0.5 * (
            (inp[1] - teacher_feats[i][1]).abs().mean() + (inp[0] - teacher_feats[i][0]).abs().mean())
    (hand / 5).backward()
    assert net.a.grad.item() == pytest.approx(a_var.grad.item(), rel=1e-5)


# -- the faithful recipes against a table of the official settings --------------------------------------------

MD4ALL_COMMON = {  # md4all config/config.py (TRAINING, OPTIMIZER, MODEL.DEPTH) with REPEAT 2 folded into epochs
    "optim.batch_size": 16, "optim.epochs": 40, "optim.decay_every_epochs": 10, "optim.gamma": 0.5, "optim.lr": 2e-4,
    "model.min_depth": 0.1, "model.max_depth": 80.0, "model.num_layers": 18, "model.scales": [0, 1, 2, 3],
    "augment.color_jitter_p": 1.0, "augment.brightness": 0.2, "augment.contrast": 0.2, "augment.saturation": 0.2,
    "augment.hue": 0.05, "augment.flip_p": 0.5, "augment.noise_mean": 0.005, "augment.noise_std": 0.045,
}
DD = {"losses.photometric.weight": 0.0, "losses.smoothness.weight": 0.0, "losses.velocity.weight": 0.0,
      "losses.distill.weight": 1.0, "losses.distill.resolution": "native", "augment.noise_p": 0.5,
      "data.options.daytime_norm": True, "degrade.mode": "offline", "providers.teacher.enabled": True,
      "providers.teacher.init_student": False, "model.init_checkpoint": None}
ACDEPTH = {"optim.lr": 5e-4, "optim.epochs": 50, "optim.decay_every_epochs": 30, "optim.gamma": 0.1,
           "losses.ogd_rank.weight": 0.01, "losses.ogd_rank.partner_ratio": 0.05, "losses.ogd_rank.global_ratio": 0.01,
           "losses.feature_consistency.weight": 0.02, "losses.feature_consistency.w1": 1.0,
           "losses.feature_consistency.w2": 0.5, "providers.depth_prior.enabled": True,
           "providers.depth_prior.source": "depth_anything", "providers.depth_prior.input_size": [322, 574]}
NUSCENES = {"data.dataset": "nuscenes", "data.height": 320, "data.width": 576, "data.train_conditions": ["day-clear"],
            "eval.protocol": "nuscenes_md4all"}
ROBOTCAR = {"data.dataset": "robotcar", "data.height": 320, "data.width": 544, "data.train_conditions": ["day"],
            "eval.protocol": "robotcar_md4all"}
OFFICIAL = {
    "nuscenes_md4all": {**MD4ALL_COMMON, **NUSCENES, "losses.velocity.weight": 0.02, "augment.noise_p": 0.0,
                        "losses.photometric.weight": 1.0, "losses.smoothness.weight": 1e-3},
    "robotcar_md4all": {**MD4ALL_COMMON, **ROBOTCAR, "losses.velocity.weight": 0.02, "augment.noise_p": 0.0},
    "nuscenes_md4all_dd": {**MD4ALL_COMMON, **NUSCENES, **DD, "providers.teacher.recipe": "nuscenes_md4all",
                           "degrade.rules": [("rain", 0.5), ("night", 0.33)]},
    "robotcar_md4all_dd": {**MD4ALL_COMMON, **ROBOTCAR, **DD, "providers.teacher.recipe": "robotcar_md4all",
                           "degrade.rules": [("night", 0.5)]},
    "nuscenes_acdepth": {**MD4ALL_COMMON, **NUSCENES, **DD, **ACDEPTH, "losses.ogd_rank.keep_ratio": 0.05,
                         "losses.ogd_rank.window": 5, "losses.feature_consistency.start_fraction": 0.64,
                         "degrade.rules": [("rain", 0.5), ("night", 0.33)]},
    "robotcar_acdepth": {**MD4ALL_COMMON, **ROBOTCAR, **DD, **ACDEPTH, "losses.ogd_rank.keep_ratio": 0.01,
                         "losses.ogd_rank.window": 1, "losses.feature_consistency.start_fraction": 0.24,
                         "degrade.rules": [("night", 0.5)]},
}


def _resolved(cfg, dotted: str):
    from omegaconf import OmegaConf

    if dotted == "degrade.rules":
        return [(r.condition, float(r.p)) for r in cfg.degrade.rules]
    value = OmegaConf.select(cfg, dotted)
    return OmegaConf.to_container(value) if hasattr(value, "_content") and not isinstance(value, str) else value


def _same(resolved, official) -> bool:
    if isinstance(official, float) and isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
        return resolved == pytest.approx(official)
    return resolved == official


@pytest.mark.parametrize("recipe", sorted(OFFICIAL))
def test_faithful_recipes_resolve_to_the_official_settings(recipe: str) -> None:
    from robustdepth.configure import load_config

    cfg = load_config(recipe)
    wrong = {k: (_resolved(cfg, k), v) for k, v in OFFICIAL[recipe].items() if not _same(_resolved(cfg, k), v)}
    assert not wrong, f"{recipe}: (resolved, official) {wrong}"
    assert cfg.model.pretrained_path, "official students and baselines start from ImageNet weights"
    if cfg.providers.teacher.enabled:
        assert "data.options.daytime_norm=false" in list(cfg.providers.teacher.overrides)


def test_lc_start_fractions_are_the_official_epochs() -> None:
    """ACDepth's L_c is on for epoch > CONTRAST_START of 25 (0-based): 16/25 on nuScenes, 6/25 on RobotCar."""
    assert OFFICIAL["nuscenes_acdepth"]["losses.feature_consistency.start_fraction"] == pytest.approx(1 - 9 / 25)
    assert OFFICIAL["robotcar_acdepth"]["losses.feature_consistency.start_fraction"] == pytest.approx(6 / 25)


@pytest.mark.parametrize("recipe", ["nuscenes_md4all_dd", "robotcar_acdepth"])
def test_faithful_pipeline_teacher_is_the_md4all_baseline(recipe: str) -> None:
    """The pipeline's teacher stage of a faithful recipe is md4all's baseline: photometric + velocity 0.02, dataset
    normalisation, clean data, ImageNet init, the student's dataset and resolution."""
    from robustdepth.configure import load_config
    from robustdepth.training.pipeline import teacher_stage_config

    student = load_config(recipe)
    teacher = teacher_stage_config(student)
    assert teacher.losses.velocity.weight == pytest.approx(0.02) and teacher.losses.photometric.weight == 1.0
    assert teacher.losses.distill.weight == 0.0 and teacher.degrade.mode == "none"
    assert not teacher.data.options.get("daytime_norm", False) and student.data.options.daytime_norm
    assert (teacher.data.dataset, teacher.data.height, teacher.data.width) == (
        student.data.dataset, student.data.height, student.data.width)
    assert teacher.model.pretrained_path and teacher.model.max_depth == 80.0


def test_world_training_batches_carry_gt_to_the_oracle_prior(tmp_path) -> None:
    """acdepth_ogd_oracle on the embedded world: the training batch holds GT depth, the oracle prior orders like it,
    and the OGD term finds labelled pairs on a real frame."""
    from torch.utils.data import default_collate

    from robustdepth import world
    from robustdepth.checkpoint import save_checkpoint
    from robustdepth.config import to_dict
    from robustdepth.configure import load_config
    from robustdepth.data import build_dataset
    from robustdepth.networks import DepthNet
    from robustdepth.providers.depth_prior import DepthPrior
    from robustdepth.providers.teacher import Teacher
    from robustdepth.training.context import StepContext

    root = world.generate("tiny", 0, tmp_path / "world", progress=False)
    common = [f"data.root={root}", "data.height=64", "data.width=192", "data.num_workers=0"]
    torch.manual_seed(0)
    teacher_path = save_checkpoint(tmp_path / "teacher" / "last.pt", {
        "config": to_dict(load_config("monodepth2", common)), "models": {"depth": DepthNet(18).state_dict()},
        "step": 0, "total_steps": 0})
    cfg = load_config("acdepth_ogd_oracle", [*common, f"providers.teacher.checkpoint={teacher_path}"])
    assert cfg.data.load_depth_gt and cfg.providers.depth_prior.source == "oracle"
    batch = default_collate([build_dataset(cfg, "train", train=True)[i] for i in range(2)])
    assert batch["depth_gt"].shape[0] == 2 and bool((batch["depth_gt"] > 0).any())
    providers = FixedProviders({"teacher": Teacher(cfg.providers.teacher, cfg),
                                "depth_prior": DepthPrior(cfg.providers.depth_prior, cfg)})
    providers.values = {k: (lambda ctx, p=p: p(ctx)) for k, p in providers.values.items()}
    student = DepthNet(18)
    ctx = StepContext(batch, student, None, providers, StepState(0, 10, 0, 5), cfg, torch.Generator().manual_seed(0),
                      torch.device("cpu"))
    prior = ctx.provide("depth_prior")
    gt = batch["depth_gt"]
    near = (gt > 0) & (gt < gt[gt > 0].quantile(0.1))
    far = gt > gt[gt > 0].quantile(0.9)
    assert prior.disparity[near].mean() > prior.disparity[far].mean()  # closer = larger, as GT says
    loss, logs = OGDRankLoss(cfg.losses.ogd_rank, cfg)(ctx)
    assert torch.isfinite(loss) and logs["pairs"] > 0
