"""ACDepth's multi-granularity distillation (Jiang et al., IJCAI 2025; docs/methods.md § ACDepth).

ACDepth's total loss is L = L_d + 0.01·L_r + 0.02·L_c. L_d is md4all-DD's term, reused as is
(``losses.distill``); this module adds

* ``ogd_rank`` — Ordinal Guidance Distillation L_r: a logistic ranking loss on the student's DEPTH
  (5×5 box-averaged, zero padding) over pixel pairs whose ordinal label comes from a frozen
  relative-depth prior (``providers.depth_prior``: DAv2 as the paper; the teacher by default, with which the
  labels repeat L_d's target and OGD adds no knowledge; an *oracle* from GT on the embedded world). Pairs focus on
  where student and teacher disagree: the per-image top-5 % of U = |D_S − D_T|/(D_S + D_T) (kept with
  probability ``keep_ratio``), each paired with a random partner from 5 % of the other pixels, plus
  "global" pairs (1 % of positions, shared by the batch, paired with a permutation of themselves).
* ``feature_consistency`` — L_c: L1 between the student's five encoder levels on its (degraded) input
  and (i) its own detached features on the clean frame (``ctx.image("clean")``: normalised like every other
  network input when the data applies md4all's daytime normalisation) for translated samples (w1 = 1.0) and (ii) the
  teacher's features for all samples (w2 = 0.5). Active only after a start epoch (ACDepth:
  epoch > 15 of 25 on nuScenes) — expressed as an epoch or as a fraction of training.

All randomness comes from ``ctx.generator`` (CPU), so resumed runs stay bit-exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


# -- OGD building blocks -----------------------------------------------------------------------------

def uncertainty_map(depth_student: Tensor, depth_teacher: Tensor) -> Tensor:
    """U = |D_S − D_T| / (D_S + D_T) on depth, detached (ACDepth's ``outputs['Mask']``)."""
    with torch.no_grad():
        return (depth_student - depth_teacher).abs() / (depth_student + depth_teacher)


def window_average(depth: Tensor, window: int) -> Tensor:
    """k×k box average with ZERO padding (ACDepth's RANKING_WINDOWS_PRE; biases border depths low)."""
    if window <= 1:
        return depth
    return F.avg_pool2d(depth, window, stride=1, padding=window // 2, count_include_pad=True)


def local_pairs(uncertainty: Tensor, generator: torch.Generator, quantile: float = 0.95, keep_ratio: float = 0.05,
                partner_ratio: float = 0.05) -> tuple[Tensor, Tensor]:
    """(a, b) flat indices into B×H×W: b from the per-image top (1 − quantile) of U kept with ``keep_ratio``,
    a drawn uniformly from a random ``partner_ratio`` of the remaining pixels of the same image."""
    b, _, h, w = uncertainty.shape
    flat = uncertainty.reshape(b, -1).float().cpu()
    threshold = torch.quantile(flat, quantile, dim=1, keepdim=True)
    uncertain = flat >= threshold
    keep = torch.rand(flat.shape, generator=generator) < keep_ratio
    partner = ~uncertain & (torch.rand(flat.shape, generator=generator) < partner_ratio)
    idx_a, idx_b = [], []
    for i in range(b):
        chosen = torch.nonzero(uncertain[i] & keep[i]).flatten()
        partners = torch.nonzero(partner[i]).flatten()
        if chosen.numel() == 0 or partners.numel() == 0:
            continue
        pick = torch.randint(partners.numel(), (chosen.numel(),), generator=generator)
        idx_b.append(chosen + i * h * w)
        idx_a.append(partners[pick] + i * h * w)
    if not idx_a:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    return torch.cat(idx_a), torch.cat(idx_b)


def global_pairs(batch: int, height: int, width: int, generator: torch.Generator,
                 ratio: float = 0.01) -> tuple[Tensor, Tensor]:
    """Global pairs: positions G_A (``ratio`` of the image, the same for the whole batch) paired in raster
    order with the positions of a random permutation of that mask (G_B); flat indices into B×H×W."""
    mask_a = torch.rand(height * width, generator=generator) < ratio
    mask_b = mask_a[torch.randperm(height * width, generator=generator)]
    pos_a, pos_b = torch.nonzero(mask_a).flatten(), torch.nonzero(mask_b).flatten()
    offsets = (torch.arange(batch) * height * width)[:, None]
    return (pos_a[None] + offsets).flatten(), (pos_b[None] + offsets).flatten()


def valid_pairs(idx_a: Tensor, idx_b: Tensor, valid: Tensor) -> Tensor:
    """Which pairs to keep: BOTH ends valid.

    The official code combines the two validity masks with OR (``mask_ignorea | mask_ignoreb``), which keeps
    every pair with one valid end — effectively all pairs; AND was clearly intended, and is what we do.
    """
    return valid[idx_a] & valid[idx_b]


def ordinal_labels(s_a: Tensor, s_b: Tensor, theta: float = 0.15) -> Tensor:
    """ℓ from a relative INVERSE depth prior: −1 when a is closer (s_a/s_b ≥ 1+θ), +1 when b is closer
    (s_b/s_a > 1+θ), else 0 (ignored)."""
    labels = torch.zeros_like(s_a)
    labels[s_a / s_b >= 1 + theta] = -1.0
    labels[s_b / s_a > 1 + theta] = 1.0
    return labels


def ranking_loss(depth_a: Tensor, depth_b: Tensor, labels: Tensor) -> Tensor:
    """mean over ℓ ≠ 0 of log(1 + exp(−ℓ (D_a − D_b))) (softplus form, numerically stable); ℓ = −1 drives D_a < D_b."""
    used = labels != 0
    if not bool(used.any()):
        return depth_a.sum() * 0.0
    return F.softplus(-labels[used] * (depth_a[used] - depth_b[used])).mean()


@dataclass
class OGDRankConfig(TermConfig):
    weight: float = 0.0  # ACDepth RANK_WEIGHT: 0.01
    theta: float = 0.15  # ordinal-label tolerance θ
    quantile: float = 0.95  # uncertain set = U >= per-image 95th percentile
    keep_ratio: float = 0.05  # keep probability r of uncertain pixels (nuScenes 0.05, RobotCar 0.01)
    partner_ratio: float = 0.05  # partner set: random 5 % of the other pixels
    global_ratio: float = 0.01  # global pairs: 1 % of positions
    window: int = 5  # student depth box window (1 = raw pixels, RobotCar's RANKING_WINDOWS_PRE=False)
    filter_depth: float = 1e-8  # prior values below this are invalid
    view: str = "input"


@register_loss
class OGDRankLoss(LossTerm):
    """L_r: ordinal guidance from the relative-depth prior, focused on student/teacher disagreement."""

    name = "ogd_rank"
    Config = OGDRankConfig
    requires = ("teacher", "depth_prior")

    def forward(self, ctx: StepContext) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        depth = ctx.depth_full(cfg.view, 0)
        prior = ctx.provide("depth_prior")
        b, _, h, w = depth.shape
        uncertainty = uncertainty_map(depth, ctx.provide("teacher").depth(0))
        a_loc, b_loc = local_pairs(uncertainty, ctx.generator, cfg.quantile, cfg.keep_ratio, cfg.partner_ratio)
        a_glob, b_glob = global_pairs(b, h, w, ctx.generator, cfg.global_ratio)
        idx_a = torch.cat([a_loc, a_glob]).to(depth.device)
        idx_b = torch.cat([b_loc, b_glob]).to(depth.device)
        s = prior.disparity.reshape(-1)
        valid = prior.valid.reshape(-1) & (s > cfg.filter_depth)
        keep = valid_pairs(idx_a, idx_b, valid)  # AND, fixing the official code's OR (see valid_pairs)
        idx_a, idx_b = idx_a[keep], idx_b[keep]
        labels = ordinal_labels(s[idx_a], s[idx_b], cfg.theta)
        student = window_average(depth, cfg.window).reshape(-1)
        loss = ranking_loss(student[idx_a], student[idx_b], labels)
        return loss, {"pairs": float((labels != 0).sum()), "local_pairs": float(a_loc.numel())}


# -- feature consistency ---------------------------------------------------------------------------

def _masked_l1(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean |x − y| over the samples in ``mask`` (0 when the set is empty)."""
    if not bool(mask.any()):
        return x.sum() * 0.0
    return (x[mask] - y[mask]).abs().mean()


def feature_consistency(student: Sequence[Tensor], student_clean: Sequence[Tensor], teacher: Sequence[Tensor],
                        translated: Tensor, w1: float = 1.0, w2: float = 0.5) -> Tensor:
    """L_c = w1·(1/L)Σ_l ‖φ_S^aug − φ_S^clr‖₁^M + w2·(1/L)Σ_l (‖φ_S^aug − φ_T‖₁^M̄ + ‖φ_S^aug − φ_T‖₁^M).

    ``translated`` (bool per sample) is M; ``student_clean`` and ``teacher`` are treated as targets (detached).
    """
    if not len(student) == len(student_clean) == len(teacher):
        raise ValueError(f"feature_consistency: level counts differ ({len(student)}, {len(student_clean)}, "
                         f"{len(teacher)})")
    mask = translated.bool().to(student[0].device)
    total = student[0].new_zeros(())
    for aug, clean, teach in zip(student, student_clean, teacher, strict=True):
        clean, teach = clean.detach(), teach.detach()
        total = total + w1 * _masked_l1(aug, clean, mask)
        total = total + w2 * (_masked_l1(aug, teach, ~mask) + _masked_l1(aug, teach, mask))
    return total / len(student)


@dataclass
class FeatureConsistencyConfig(TermConfig):
    weight: float = 0.0  # ACDepth CONTRAST_WEIGHT: 0.02
    w1: float = 1.0  # student-degraded vs student-clean (translated samples)
    w2: float = 0.5  # student-degraded vs teacher (all samples)
    start_epoch: float = 15.0  # active for epoch > start_epoch (ACDepth: 15 nuScenes, 5 RobotCar)
    # >= 0 replaces start_epoch: active once this fraction of training is done (ACDepth nuScenes:
    # epochs 16..24 of 25 → 0.64), so short benchmark runs keep the paper's proportion.
    start_fraction: float = -1.0
    view: str = "input"


@register_loss
class FeatureConsistencyLoss(LossTerm):
    """L_c ("FCC"): encoder-feature consistency with the clean student pass and with the teacher."""

    name = "feature_consistency"
    Config = FeatureConsistencyConfig
    requires = ("teacher",)

    def active(self, state: Any) -> bool:
        if self.cfg.start_fraction >= 0:
            return state.progress >= self.cfg.start_fraction
        return state.epoch > self.cfg.start_epoch

    def weight(self, ctx: StepContext) -> float:
        return float(self.cfg.weight) if self.active(ctx.state) else 0.0

    def forward(self, ctx: StepContext) -> Tensor:
        student = ctx.depth(self.cfg.view).encoder_features
        clean = ctx.depth("clean", grad=False).encoder_features
        teacher = ctx.provide("teacher").encoder_features
        translated = ctx.batch.get("is_degraded", torch.zeros(ctx.batch_size, dtype=torch.bool))
        translated = torch.as_tensor(translated, dtype=torch.bool) & ctx.degraded_active
        return feature_consistency(student, clean, teacher, translated, self.cfg.w1, self.cfg.w2)


__all__ = ["FeatureConsistencyLoss", "OGDRankLoss", "feature_consistency", "global_pairs", "local_pairs",
           "ordinal_labels", "ranking_loss", "uncertainty_map", "valid_pairs", "window_average"]
