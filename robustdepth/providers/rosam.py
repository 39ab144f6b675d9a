"""RoSAMDepth's object-level priors (docs/methods.md § RoSAMDepth): region statistics of a frozen teacher's
depth over the offline object masks, shared by the loss terms of :mod:`robustdepth.losses.rosam`.

* **AROM**: per image and region, mean μ and std σ of the teacher's inverse depth, σ' = max(σ, s_f·μ) + ε;
  δ = |d_t − μ|/σ'; adaptive threshold τ = τ0 + λ·σ/μ (a z-score plus a dimensionless spread, both unit-free:
  the paper's τ0 + λσ adds disparity units to a z-score); outlier mask M_out = 1 − S((S(δ − τ) − 0.5)/κ).
* **ORE**: the photometric error of the teacher's depth and pose (min over sources, no auto-masking), averaged
  per region and compared with the image mean: R = exp(−β·max(0, ē_r − ē)/ē), W_rel = R + ε. A wrongly scaled
  but uniform object has low error at most of its pixels (false pixel-level reliability) but a raised *region*
  mean, so the whole object is down-weighted.

``ctx.provide("rosam")`` gives a :class:`RegionPriors`: the masks' region index, AROM's maps and ORE's weights
of the batch, each computed on first use. Region statistics use ``index_add`` over (image, region) ids — never
a Python loop over regions. Void pixels (label 0) never contribute: M_out = 1, W_rel = 1. Masks are resized by
centre-sampled nearest neighbour (:func:`robustdepth.providers.masks.nearest_resize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from robustdepth.config import ConfigError
from robustdepth.geometry import Camera, Pose, warp
from robustdepth.providers.base import Provider, ProviderConfig, register_provider
from robustdepth.providers.masks import nearest_resize
from robustdepth.similarity import photometric_error

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

    The same rule as :func:`robustdepth.providers.masks.nearest_resize` (which it calls), so masks resized
    for a decoder scale line up with the cells that scale's features describe (legacy ``nearest`` takes
    the top-left input pixel of each cell, half a cell off).
    """
    labels = _labels_bhw(labels)
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return nearest_resize(labels, int(size[0]), int(size[1]))


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


__all__ = [
    "ORE_DEPTHS", "ORE_POSES", "THRESHOLD_UNITS", "AromMaps", "RegionIndex", "RegionPriors", "RosamConfig",
    "RosamPriors", "adaptive_outlier_mask", "arom_threshold", "min_photometric_error", "object_reliability",
    "region_index", "region_mean", "region_mean_std", "resize_labels", "sharpened_outlier_mask", "to_pixels",
]
