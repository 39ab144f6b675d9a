"""RoSAMDepth (Gao et al., CVPR 2026): object-level priors for robust distillation (docs/methods.md § RoSAMDepth).

Offline object masks (``robustdepth priors masks``, batch slot ``"masks"``: B×H×W int64, 0 = void)
enter training in three ways, on top of Syn2Real's real-adaptation stage:

* **SRC** (``rosam_src``): unit-normalised decoder features of each scale are pulled towards their
  region's prototype (the re-normalised mean feature, on the sphere) and pushed from the other regions'
  of the same image — InfoNCE with temperature τ_c, divided per image by log R (R = its regions), so the
  loss at chance is 1 whatever the segmenter's region count and λ1 means the same for every segmenter.
* **AROM** and **ORE** (``providers.rosam``, :mod:`robustdepth.providers.rosam`): per-region statistics of the
  teacher's inverse depth give the outlier mask M_out; per-region photometric error of the teacher's depth and
  pose gives the object reliability W_rel.
  **L_rgl** (``rosam_rgl``) = mean (1 − M_out)·(d_s − μ)²/σ'² pulls outliers towards their region's statistics.
* **Robust distillation** (``rosam_distill``): L_d = ¼ Σ_k mean M_out·W_cst·W_rel·|d_s − d_t|/d_s.

Region statistics use ``index_add`` over (image, region) ids — never a Python loop over regions. Void
pixels (label 0) never contribute: M_out = 1, W_rel = 1, no L_rgl, no SRC. Every scale's disparity is
upsampled to the input resolution (as Syn2Real's L_cd here), so the full-resolution maps apply at every
k; SRC works at each decoder scale's own resolution with the masks resized by centre-sampled nearest
neighbour (:func:`robustdepth.providers.masks.nearest_resize`, the rule every mask resize here uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustdepth.config import ConfigError
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.losses.distill import relative_l1
from robustdepth.losses.syn2real import consistency_weight
from robustdepth.providers.rosam import (
    AromMaps,
    RegionIndex,
    RegionPriors,
    region_index,
    resize_labels,
)

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


def regional_gaussian_likelihood(d_student: Tensor, arom: AromMaps) -> Tensor:
    """L_rgl = mean_p (1 − M_out)·(d_s − μ)²/σ'² over all pixels (σ' = AROM's floored σ); void pixels give 0.

    The floor (``providers.rosam.sigma_floor``, relative to μ) bounds 1/σ² in near-constant regions: there
    the sharpened sigmoid still leaves 1 − M_out ≈ 5e-4 at inliers, and with σ ≈ 1e-6 that leak would
    dominate the loss and its gradient (its effect: docs/results/rosam.md, "σ-floor"). Gradient flows to
    ``d_student`` only; M_out, μ, σ' are the teacher's (no gradient).
    """
    per_pixel = (1.0 - arom.m_out) * (d_student - arom.mu) ** 2 / arom.sigma**2
    return torch.where(arom.valid, per_pixel, torch.zeros_like(per_pixel)).mean()


# -------------------------------------------------------------------------------------------------- SRC


def _sample_pixels(index: RegionIndex, max_pixels: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Up to ``max_pixels`` kept pixels per image, uniformly without replacement: (B×n flat indices, B×n valid)."""
    batch = index.region.shape[0]
    region = index.region.reshape(batch, -1)
    keys = torch.rand(region.shape, generator=generator, device="cpu").to(region.device)
    keys = torch.where(region >= 0, keys, torch.full_like(keys, float("inf")))
    n = min(int(max_pixels), region.shape[1])
    chosen = keys.topk(n, dim=1, largest=False).indices
    return chosen, torch.isfinite(keys.gather(1, chosen))


def region_contrast(features: Tensor, labels: Tensor, generator: torch.Generator, temperature: float = 0.1,
                    max_pixels: int = 4096, min_region_pixels: int = 4, detach_prototypes: bool = False,
                    normalise_by_regions: bool = True) -> Tensor | None:
    """SRC at one scale: InfoNCE between sampled unit features and their image's region prototypes.

    ``features`` B×C×h×w, ``labels`` B×h×w (already at this resolution). Prototypes use *every* pixel of a
    region; the loss averages over the sampled pixels of all images. None when no region survives.

    ``normalise_by_regions`` divides each pixel's cross-entropy by log R of its image (R = kept regions;
    images with one region contribute 0): InfoNCE at chance is log R, so without it λ1 acts harder on a
    segmenter that makes many regions than on one that makes few, and its value is not comparable across
    segmenters (docs/methods.md § RoSAMDepth).
    """
    if features.shape[0] != labels.shape[0] or features.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"SRC: features {tuple(features.shape)} and labels {tuple(labels.shape)} do not align")
    index = region_index(labels, min_region_pixels)
    if index.num_regions == 0:
        return None
    batch, channels = features.shape[:2]
    unit = F.normalize(features.float(), dim=1).flatten(2).transpose(1, 2)  # B×HW×C
    ids = index.region.reshape(batch, -1)
    sums = torch.zeros(index.num_regions, channels, device=unit.device).index_add(0, ids[ids >= 0], unit[ids >= 0])
    prototypes = F.normalize(sums, dim=1)
    if detach_prototypes:
        prototypes = prototypes.detach()
    padded = torch.zeros(batch, index.num_local, channels, device=unit.device)
    padded = padded.index_put((index.image, index.local), prototypes)
    present = torch.zeros(batch, index.num_local, dtype=torch.bool, device=unit.device)
    present[index.image, index.local] = True

    chosen, chosen_valid = _sample_pixels(index, max_pixels, generator)
    sampled = unit.gather(1, chosen[..., None].expand(-1, -1, channels))  # B×n×C
    logits = torch.bmm(sampled, padded.transpose(1, 2)) / temperature  # B×n×R
    logits = logits.masked_fill(~present[:, None, :], float("-inf"))
    target = index.local[ids.gather(1, chosen).clamp(min=0)]
    per_pixel = F.cross_entropy(logits[chosen_valid], target[chosen_valid], reduction="none")
    if normalise_by_regions:
        regions = present.sum(1).float()  # R per image
        scale = torch.where(regions > 1, regions.log(), torch.ones_like(regions))
        per_pixel = per_pixel / scale[:, None].expand_as(chosen)[chosen_valid]
    return per_pixel.mean()


# -------------------------------------------------------------------------------------------- loss terms


@dataclass
class RosamDistillConfig(TermConfig):
    weight: float = 0.0  # RoSAMDepth L_d: 1 (replaces syn2real_distill, whose weight the recipe sets to 0)
    use_arom: bool = True  # multiply by M_out (ablation rows without AROM: false)
    use_ore: bool = True  # multiply by W_rel (ablation rows without ORE: false)
    use_cst: bool = True  # multiply by Syn2Real's W_cst (needs providers.day_model)
    cst_beta: float = 1.0  # W_cst β (Syn2Real code: 1)
    cst_eps: float = 1.0  # W_cst ε (Syn2Real code: 1)
    view: str = "input"


def robust_distillation(d_students: list[Tensor], d_teachers: list[Tensor], shared: Tensor,
                        cst_weights: list[Tensor] | None) -> Tensor:
    """L_d = (1/K) Σ_k mean_p shared·W_cst,k·|d_s,k − d_t,k|/d_s,k — the kernel of ``rosam_distill``.

    ``shared`` = M_out·W_rel (or ones), ``cst_weights`` the per-scale W_cst (None = off); every weight and
    the teachers carry no gradient, the student gets it through both |d_s − d_t| and the 1/d_s normaliser.
    """
    total = torch.zeros((), device=shared.device)
    for k, (d_s, d_t) in enumerate(zip(d_students, d_teachers)):
        weight = shared.detach() if cst_weights is None else shared.detach() * cst_weights[k].detach()
        total = total + (weight * relative_l1(d_s, d_t)).mean()
    return total / len(d_students)


@register_loss
class RosamDistillLoss(LossTerm):
    """L_d = ¼ Σ_k mean_p M_out·W_cst·W_rel·|d_s − d_t|/d_s (all maps without gradient)."""

    name = "rosam_distill"
    Config = RosamDistillConfig
    requires = ("teacher", "day_model", "rosam")

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        if not cfg.use_cst:  # Φ_day is only read for W_cst
            self.requires = ("teacher", "rosam")

    def forward(self, ctx: StepContext) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        teacher = ctx.provide("teacher")
        priors: RegionPriors = ctx.provide("rosam")
        shared = torch.ones_like(teacher.scaled_disp(0))
        logs: dict[str, float] = {}
        if cfg.use_arom:
            shared = shared * priors.arom.m_out
            logs["m_out"] = float(priors.arom.m_out.detach().mean())
        if cfg.use_ore:
            shared = shared * priors.w_rel
            logs["w_rel"] = float(priors.w_rel.detach().mean())
        d_t = [teacher.scaled_disp(k) for k in ctx.scales]
        cst = None
        if cfg.use_cst:
            day = ctx.provide("day_model")
            cst = [consistency_weight(t, day.scaled_disp(k), cfg.cst_beta, cfg.cst_eps)
                   for t, k in zip(d_t, ctx.scales)]
            logs["w_cst"] = float(sum(float(w.mean()) for w in cst) / len(cst))
        d_s = [ctx.scaled_disp_full(cfg.view, k) for k in ctx.scales]
        return robust_distillation(d_s, d_t, shared, cst), logs


@dataclass
class RosamRglConfig(TermConfig):
    weight: float = 0.0  # λ2, UNSPECIFIED (suggested): 0.01
    all_scales: bool = True  # UNSPECIFIED (ours): average over every scale (upsampled) as L_d; false = scale 0 only
    view: str = "input"  # σ' (and its floor, providers.rosam.sigma_floor) is AROM's: one σ for δ and L_rgl


@register_loss
class RosamRglLoss(LossTerm):
    """Regional Gaussian likelihood, weighted by AROM's 1 − M_out (non-local pull inside outlier regions)."""

    name = "rosam_rgl"
    Config = RosamRglConfig
    requires = ("teacher", "rosam")

    def forward(self, ctx: StepContext) -> Tensor:
        arom = ctx.provide("rosam").arom
        scales = ctx.scales if self.cfg.all_scales else [0]
        total = sum(regional_gaussian_likelihood(ctx.scaled_disp_full(self.cfg.view, k), arom) for k in scales)
        return total / len(scales)


@dataclass
class RosamSrcConfig(TermConfig):
    weight: float = 0.0  # λ1, UNSPECIFIED (suggested): 0.05 (on the region-count-normalised loss below)
    temperature: float = 0.1  # UNSPECIFIED (suggested): τ_c
    # UNSPECIFIED (suggested): the four decoder upconv outputs (1/1, 1/2, 1/4, 1/8) = model scales 0..3
    scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    max_pixels: int = 4096  # UNSPECIFIED (suggested): sampled pixels per image per scale
    min_region_pixels: int = 4  # UNSPECIFIED (suggested): regions smaller than this at a scale are dropped
    detach_prototypes: bool = False  # UNSPECIFIED (suggested): prototypes keep their gradient
    # UNSPECIFIED (ours): divide each pixel's InfoNCE by log R of its image, so λ1 does not depend on how many
    # regions the segmenter makes (false = the paper's plain InfoNCE)
    normalise_by_regions: bool = True
    view: str = "input"


@register_loss
class RosamSrcLoss(LossTerm):
    """SRC: region-prototype InfoNCE on the student's decoder features, averaged over scales."""

    name = "rosam_src"
    Config = RosamSrcConfig
    requires = ("masks",)

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        model_scales = list(root_cfg.model.scales)
        bad = [s for s in cfg.scales if s not in model_scales]
        if bad:
            raise ConfigError(f"losses.rosam_src.scales has {bad}, the model's scales are {model_scales}")

    def forward(self, ctx: StepContext) -> Tensor | None:
        cfg = self.cfg
        labels = ctx.provide("masks")
        out = ctx.depth(cfg.view)
        model_scales = list(ctx.scales)
        losses = []
        for s in cfg.scales:
            feats = out.features[model_scales.index(s)]
            value = region_contrast(feats, resize_labels(labels, tuple(feats.shape[-2:])), ctx.generator,
                                    cfg.temperature, cfg.max_pixels, cfg.min_region_pixels, cfg.detach_prototypes,
                                    cfg.normalise_by_regions)
            if value is not None:
                losses.append(value)
        return torch.stack(losses).mean() if losses else None


__all__ = ["RosamDistillConfig", "RosamDistillLoss", "RosamRglConfig", "RosamRglLoss", "RosamSrcConfig",
           "RosamSrcLoss", "region_contrast", "regional_gaussian_likelihood", "robust_distillation"]
