"""RoSAMDepth (Gao et al., CVPR 2026): object-level priors for robust distillation (docs/methods.md § RoSAMDepth).

Offline object masks (``robustdepth priors masks``, batch slot ``"masks"``: B×H×W int64, 0 = void)
enter training in three ways, on top of Syn2Real's real-adaptation stage:

* **SRC** (``rosam_src``): unit-normalised decoder features of each scale are pulled towards their
  region's prototype (the re-normalised mean feature, on the sphere) and pushed from the other regions'
  of the same image — InfoNCE with temperature τ_c, divided per image by log R (R = its regions), so the
  loss at chance is 1 whatever the segmenter's region count and λ1 means the same for every segmenter.
* **AROM** (``providers.rosam``): per image and region, mean μ and std σ of the teacher's inverse depth,
  σ' = max(σ, s_f·μ) + ε; δ = |d_t − μ|/σ'; adaptive threshold τ = τ0 + λ·σ/μ (a z-score plus a
  dimensionless spread, both unit-free: the paper's τ0 + λσ adds disparity units to a z-score);
  outlier mask M_out = 1 − S((S(δ − τ) − 0.5)/κ).
  **L_rgl** (``rosam_rgl``) = mean (1 − M_out)·(d_s − μ)²/σ'² pulls outliers towards their region's statistics.
* **ORE** (``providers.rosam``): the photometric error of the teacher's depth and pose (min over sources,
  no auto-masking), averaged per region and compared with the image mean: R = exp(−β·max(0, ē_r − ē)/ē),
  W_rel = R + ε. A wrongly scaled but uniform object has low error at most of its pixels (false pixel-level
  reliability) but a raised *region* mean, so the whole object is down-weighted.
* **Robust distillation** (``rosam_distill``): L_d = ¼ Σ_k mean M_out·W_cst·W_rel·|d_s − d_t|/d_s.

Region statistics use ``index_add`` over (image, region) ids — never a Python loop over regions. Void
pixels (label 0) never contribute: M_out = 1, W_rel = 1, no L_rgl, no SRC. Every scale's disparity is
upsampled to the input resolution (as Syn2Real's L_cd here), so the full-resolution maps apply at every
k; SRC works at each decoder scale's own resolution with the masks resized by centre-sampled nearest
neighbour (:func:`robustdepth.priors.masks.nearest_resize`, the rule every mask resize here uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustdepth.config import ConfigError
from robustdepth.geometry import Camera, Pose, warp
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.losses.distill import relative_l1
from robustdepth.losses.photometric import photometric_error
from robustdepth.losses.syn2real import consistency_weight
from robustdepth.priors import masks as _masks  # registers providers.masks and its sample hook
from robustdepth.priors.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


# ------------------------------------------------------------------------------------------ region maths


@dataclass
class RegionIndex:
    """The regions of a batch of label maps, numbered 0..G−1 across the batch (image-major order).

    ``region`` is B×H×W with each pixel's region id (−1 = void or dropped); ``count`` (G, float) the
    pixels per region; ``image``/``local`` (G) the image of each region and its index within that image
    (0..num_local−1), which lets per-image quantities be laid out as padded B×num_local tensors.
    """

    region: Tensor
    count: Tensor
    image: Tensor
    local: Tensor
    num_local: int

    @property
    def num_regions(self) -> int:
        return int(self.count.numel())

    @property
    def valid(self) -> Tensor:
        """B×H×W bool: pixels that belong to a (kept) region."""
        return self.region >= 0


def _labels_bhw(labels: Tensor) -> Tensor:
    if labels.ndim == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 3:
        raise ValueError(f"region labels must be B×H×W (or B×1×H×W), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"region labels must be integers (0 = void), got dtype {labels.dtype}")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("region labels must be >= 0 (0 = void), got negative labels")
    return labels.long()


def region_index(labels: Tensor, min_pixels: int = 1) -> RegionIndex:
    """Number the regions of B label maps (0 = void); regions with fewer than ``min_pixels`` become void."""
    labels = _labels_bhw(labels)
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1)
    stride = int(flat.max()) + 1 if flat.numel() else 1
    key = torch.arange(batch, device=labels.device)[:, None] * stride + flat
    covered = flat > 0
    keys, inverse, counts = torch.unique(key[covered], return_inverse=True, return_counts=True)
    keep = counts >= min_pixels
    new_id = torch.cumsum(keep.long(), 0) - 1
    pixel_id = torch.where(keep[inverse], new_id[inverse], torch.full_like(inverse, -1))
    region = torch.full_like(flat, -1)
    region[covered] = pixel_id
    keys, counts = keys[keep], counts[keep]
    image = torch.div(keys, stride, rounding_mode="floor")
    per_image = torch.bincount(image, minlength=batch)
    first = torch.cumsum(per_image, 0) - per_image
    local = torch.arange(keys.numel(), device=labels.device) - first[image]
    return RegionIndex(region.reshape(labels.shape), counts.to(torch.float32), image, local,
                       int(per_image.max()) if batch else 0)


def _pixel_values(values: Tensor, index: RegionIndex) -> Tensor:
    """Values at the kept pixels (flattened), in the order of ``index.region[index.valid]``."""
    if values.ndim == 4:
        if values.shape[1] != 1:
            raise ValueError(f"region statistics need one channel, got shape {tuple(values.shape)}")
        values = values[:, 0]
    if values.shape != index.region.shape:
        raise ValueError(f"values {tuple(values.shape)} and labels {tuple(index.region.shape)} differ in size")
    return values[index.valid]


def region_mean(values: Tensor, index: RegionIndex) -> Tensor:
    """Per-region mean (G,) of B×1×H×W ``values`` (differentiable: ``index_add``)."""
    ids = index.region[index.valid]
    v = _pixel_values(values, index)
    sums = torch.zeros(index.num_regions, device=v.device, dtype=v.dtype).index_add(0, ids, v)
    return sums / index.count.to(v)


def region_mean_std(values: Tensor, index: RegionIndex) -> tuple[Tensor, Tensor]:
    """Per-region mean and population std (G,), two-pass (no E[x²] − μ² cancellation)."""
    ids = index.region[index.valid]
    v = _pixel_values(values, index)
    mean = region_mean(values, index)
    sq = torch.zeros_like(mean).index_add(0, ids, (v - mean[ids]) ** 2)
    return mean, (sq / index.count.to(v)).sqrt()


def to_pixels(per_region: Tensor, index: RegionIndex, fill: float) -> Tensor:
    """Scatter per-region values (G,) back to a B×1×H×W map; void pixels get ``fill``."""
    if per_region.shape != (index.num_regions,):
        raise ValueError(f"per-region values must have shape ({index.num_regions},), got {tuple(per_region.shape)}")
    if index.num_regions == 0:
        return torch.full(index.region.shape, fill, device=index.region.device).unsqueeze(1)
    gathered = per_region[index.region.clamp(min=0)]
    return torch.where(index.valid, gathered, torch.full_like(gathered, fill)).unsqueeze(1)


def resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of B×H×W integer labels, sampling each output cell at its CENTRE.

    The same rule as :func:`robustdepth.priors.masks.nearest_resize` (which it calls), so masks resized
    for a decoder scale line up with the cells that scale's features describe (legacy ``nearest`` takes
    the top-left input pixel of each cell, half a cell off).
    """
    labels = _labels_bhw(labels)
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return _masks.nearest_resize(labels, int(size[0]), int(size[1]))


# ------------------------------------------------------------------------------------------------- AROM


@dataclass
class AromMaps:
    """AROM outputs at the labels' resolution (B×1×H×W): outlier mask, region mean, the σ' that δ and
    L_rgl divide by, and the threshold τ."""

    m_out: Tensor
    mu: Tensor
    sigma: Tensor
    valid: Tensor  # B×1×H×W bool: pixel is in a kept region
    tau: Tensor


THRESHOLD_UNITS = ("relative", "disparity")


def sharpened_outlier_mask(delta: Tensor, tau: Tensor, kappa: float) -> Tensor:
    """M_out = 1 − S((S(δ − τ) − 0.5)/κ): ≈1 for inliers, 0.5 at δ = τ, ≈0 for outliers."""
    return 1.0 - torch.sigmoid((torch.sigmoid(delta - tau) - 0.5) / kappa)


def arom_threshold(mean: Tensor, std: Tensor, tau0: float, lam: float, units: str = "relative") -> Tensor:
    """Per-region threshold τ on the z-score δ.

    ``relative`` (ours): τ = τ0 + λ·σ/|μ| — the region's coefficient of variation, dimensionless like δ, and
    invariant to the teacher's (mono) scale; a region whose inverse depth legitimately spreads (a road in
    perspective) is judged more leniently than a uniform object (σ/μ ≈ 0). ``disparity``: the paper's
    literal τ = τ0 + λσ, which adds disparity units to a z-score (kept for comparison).
    """
    if units == "relative":
        return tau0 + lam * std / mean.abs().clamp(min=1e-12)
    if units == "disparity":
        return tau0 + lam * std
    raise ConfigError(f"providers.rosam.threshold_units={units!r}: use one of {THRESHOLD_UNITS}")


def adaptive_outlier_mask(d_teacher: Tensor, index: RegionIndex, tau0: float = 2.0, lam: float = 6.0,
                          kappa: float = 0.05, sigma_eps: float = 1e-6, sigma_floor: float = 0.05,
                          threshold_units: str = "relative") -> AromMaps:
    """AROM on the teacher's scaled inverse depth (no gradient). Void pixels: M_out = 1, μ = d_t, σ' = 1.

    δ = |d_t − μ|/σ' with σ' = max(σ, ``sigma_floor``·|μ|) + ``sigma_eps``: the floor keeps the noise
    tail of a near-uniform region (σ → 0, where a z-score rule flags the tail of the noise) from counting as
    outliers — a pixel must deviate by more than τ·floor relative to its region to be flagged. The
    threshold's spread term uses the raw σ (:func:`arom_threshold`).
    """
    with torch.no_grad():
        d_t = d_teacher.detach()
        mean, std = region_mean_std(d_t, index)
        tau_r = arom_threshold(mean, std, tau0, lam, threshold_units)
        sigma_r = torch.maximum(std, sigma_floor * mean.abs()) + sigma_eps
        mu = to_pixels(mean, index, 0.0)
        sigma = to_pixels(sigma_r, index, 1.0)
        tau = to_pixels(tau_r, index, float(tau0))
        valid = index.valid.unsqueeze(1)
        mu = torch.where(valid, mu, d_t)
        delta = (d_t - mu).abs() / sigma
        m_out = sharpened_outlier_mask(delta, tau, kappa)
        m_out = torch.where(valid, m_out, torch.ones_like(m_out))
    return AromMaps(m_out, mu, sigma, valid, tau)


def regional_gaussian_likelihood(d_student: Tensor, arom: AromMaps) -> Tensor:
    """L_rgl = mean_p (1 − M_out)·(d_s − μ)²/σ'² over all pixels (σ' = AROM's floored σ); void pixels give 0.

    The floor (``providers.rosam.sigma_floor``, relative to μ) bounds 1/σ² in near-constant regions: there
    the sharpened sigmoid still leaves 1 − M_out ≈ 5e-4 at inliers, and with σ ≈ 1e-6 that leak would
    dominate the loss and its gradient (its effect: docs/results/rosam.md, "σ-floor"). Gradient flows to
    ``d_student`` only; M_out, μ, σ' are the teacher's (no gradient).
    """
    per_pixel = (1.0 - arom.m_out) * (d_student - arom.mu) ** 2 / arom.sigma**2
    return torch.where(arom.valid, per_pixel, torch.zeros_like(per_pixel)).mean()


# -------------------------------------------------------------------------------------------------- ORE


def min_photometric_error(target: Tensor, sources: list[Tensor], depth: Tensor, poses: list[Pose],
                          camera: Camera, ssim_alpha: float = 0.85) -> Tensor:
    """Per-pixel minimum over sources of pe(warp(source, depth, pose), target) — no auto-masking (B×1×H×W)."""
    if not sources or len(sources) != len(poses):
        raise ValueError(f"need one pose per source frame, got {len(sources)} sources and {len(poses)} poses")
    errors = [photometric_error(warp(src, depth, pose, camera), target, ssim_alpha)
              for src, pose in zip(sources, poses)]
    return torch.cat(errors, 1).min(1, keepdim=True).values


def object_reliability(pe: Tensor, index: RegionIndex, beta: float = 2.0, eps: float = 0.1) -> Tensor:
    """W_rel = exp(−β·max(0, ē_r − ē)/ē) + ε per pixel (ē = the image's mean error over all its pixels).

    Void pixels get 1 (no re-weighting).
    """
    with torch.no_grad():
        pe = pe.detach()
        image_mean = pe.mean(dim=(1, 2, 3)).clamp(min=1e-12)
        excess = (region_mean(pe, index) - image_mean[index.image]).clamp(min=0) / image_mean[index.image]
        return to_pixels(torch.exp(-beta * excess) + eps, index, 1.0)


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


# ------------------------------------------------------------------------------------------ the provider

ORE_DEPTHS = ("teacher", "student")
ORE_POSES = ("auto", "teacher", "day_model", "student")


@dataclass
class RosamConfig(ProviderConfig):
    """AROM and ORE settings shared by ``rosam_distill`` and ``rosam_rgl`` (docs/methods.md § RoSAMDepth)."""

    tau0: float = 2.0  # UNSPECIFIED (suggested): AROM base threshold on the z-score δ, a "2σ" rule
    # UNSPECIFIED (ours): τ = τ0 + λ·σ/μ (threshold_units=relative; the paper's τ0 + λσ = disparity). λ = 6 keeps
    # a correct teacher's perspective road unflagged (its σ/μ lifts τ above the road's largest z-scores) while
    # planted intra-object outliers stay flagged — docs/results/rosam.md, "AROM on a correct teacher".
    lam: float = 6.0
    threshold_units: str = "relative"
    kappa: float = 0.05  # UNSPECIFIED (suggested): sharpening S_κ(u) = S((u − 0.5)/κ)
    sigma_eps: float = 1e-6  # UNSPECIFIED (suggested): added to σ (single-pixel regions have σ = 0)
    # UNSPECIFIED (ours): δ and L_rgl divide by σ' = max(σ, sigma_floor·μ): a near-uniform region's noise tail
    # is not an outlier, and 1/σ² stays bounded (0 = the literal formula).
    sigma_floor: float = 0.05
    # UNSPECIFIED (ours): regions with fewer pixels are void for AROM/L_rgl/ORE — σ of 1–3 pixels is
    # meaningless and σ ≈ 1e-6 makes (d_s − μ)²/σ² explode even with 1 − M_out ≈ 5e-4.
    min_region_pixels: int = 4
    teacher_scale: int = 0  # UNSPECIFIED (ours): the teacher scale AROM/ORE read (0 = finest, full resolution)
    ore_beta: float = 2.0  # UNSPECIFIED (suggested): R = exp(−β·relative excess)
    ore_eps: float = 0.1  # UNSPECIFIED (suggested): W_rel = R + ε keeps weak supervision
    ore_ssim_alpha: float = 0.85  # UNSPECIFIED (suggested): 0.85 SSIM / 0.15 L1 as Monodepth2
    # UNSPECIFIED (suggested): ORE evaluates the pseudo-label, so it warps with the TEACHER's depth (teacher |
    # student), min over sources, no auto-masking.
    ore_depth: str = "teacher"
    # Whose pose net: auto = the teacher's when its checkpoint has one, else Φ_day's (Syn2Real's Φ_syn is a
    # distillation student without a pose net; the chain's self-supervised root has one) | teacher |
    # day_model | student (the trained pose net, built only when another term needs poses).
    ore_pose: str = "auto"


class RegionPriors:
    """AROM and ORE maps of one batch, computed on first use (a term that needs only one pays for one)."""

    def __init__(self, ctx: StepContext, cfg: Any) -> None:
        self.ctx, self.cfg = ctx, cfg

    @cached_property
    def labels(self) -> Tensor:
        return self.ctx.provide("masks")

    @cached_property
    def index(self) -> RegionIndex:
        return region_index(self.labels, int(self.cfg.min_region_pixels))

    @cached_property
    def teacher_disp(self) -> Tensor:
        return self.ctx.provide("teacher").scaled_disp(int(self.cfg.teacher_scale))

    @cached_property
    def arom(self) -> AromMaps:
        cfg = self.cfg
        return adaptive_outlier_mask(self.teacher_disp, self.index, cfg.tau0, cfg.lam, cfg.kappa, cfg.sigma_eps,
                                     cfg.sigma_floor, cfg.threshold_units)

    @cached_property
    def photometric(self) -> Tensor:
        """min over sources of the photometric error of the configured depth/pose (B×1×H×W, no grad)."""
        ctx = self.ctx
        with torch.no_grad():
            if self.cfg.ore_depth == "teacher":
                depth = ctx.provide("teacher").depth(int(self.cfg.teacher_scale))
            else:
                depth = ctx.depth_full("input", 0, grad=False)
            poses = [self.pose(f) for f in ctx.source_ids]
            return min_photometric_error(ctx.color(0), [ctx.color(f) for f in ctx.source_ids], depth,
                                         [Pose(p.matrix.detach()) for p in poses], ctx.camera(0),
                                         float(self.cfg.ore_ssim_alpha))

    def pose_source(self) -> str:
        """The provider whose pose net ORE uses; ConfigError when that frozen model has none.

        ``auto``: the teacher's when its checkpoint has a pose net, else Φ_day's (when enabled).
        """
        ctx, which = self.ctx, str(self.cfg.ore_pose)
        if which == "student":
            return which
        if which == "auto":
            which = "teacher"
            if not ctx.provide("teacher").has_pose and ctx.cfg.providers.day_model.enabled:
                which = "day_model"
        if not ctx.provide(which).has_pose:
            raise ConfigError(f"providers.rosam.ore_pose={self.cfg.ore_pose}: ORE needs poses, and the {which} "
                              f"checkpoint ({ctx.provide(which).source}) has no pose network; give a checkpoint "
                              "with models.pose, enable providers.day_model, or set providers.rosam.ore_pose=student")
        return which

    def pose(self, frame_id: int) -> Pose:
        """T_target→source for ORE's warp, from the pose net ``providers.rosam.ore_pose`` names."""
        which = self.pose_source()
        if which == "student":
            return self.ctx.pose(frame_id)
        return self.ctx.provide(which).pose(frame_id)

    @cached_property
    def w_rel(self) -> Tensor:
        return object_reliability(self.photometric, self.index, self.cfg.ore_beta, self.cfg.ore_eps)


@register_provider
class RosamPriors(Provider):
    """``ctx.provide("rosam")`` → :class:`RegionPriors` (needs ``providers.masks`` and ``providers.teacher``)."""

    name = "rosam"
    Config = RosamConfig

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        if cfg.ore_depth not in ORE_DEPTHS:
            raise ConfigError(f"providers.rosam.ore_depth={cfg.ore_depth!r}: use one of {ORE_DEPTHS}")
        if cfg.ore_pose not in ORE_POSES:
            raise ConfigError(f"providers.rosam.ore_pose={cfg.ore_pose!r}: use one of {ORE_POSES}")
        if cfg.threshold_units not in THRESHOLD_UNITS:
            raise ConfigError(f"providers.rosam.threshold_units={cfg.threshold_units!r}: use one of {THRESHOLD_UNITS}")
        if cfg.min_region_pixels < 1 or cfg.kappa <= 0 or cfg.sigma_floor < 0:
            raise ConfigError(f"providers.rosam: need min_region_pixels >= 1, kappa > 0 and sigma_floor >= 0, got "
                              f"{cfg.min_region_pixels}, {cfg.kappa} and {cfg.sigma_floor}")
        for needed in ("masks", "teacher"):
            if not root_cfg.providers[needed].enabled:
                raise ConfigError(f"providers.rosam needs providers.{needed}.enabled=true")

    def forward(self, ctx: StepContext) -> RegionPriors:
        return RegionPriors(ctx, self.cfg)


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


__all__ = [
    "THRESHOLD_UNITS", "AromMaps", "RegionIndex", "RegionPriors", "RosamConfig", "RosamDistillLoss", "RosamPriors",
    "RosamRglLoss", "RosamSrcLoss", "adaptive_outlier_mask", "arom_threshold", "min_photometric_error",
    "object_reliability", "region_contrast", "region_index", "region_mean", "region_mean_std",
    "regional_gaussian_likelihood", "resize_labels", "robust_distillation", "sharpened_outlier_mask", "to_pixels",
]
