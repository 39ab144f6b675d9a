"""RoSAMDepth (Gao et al., CVPR 2026): object-level priors for robust distillation (METHODS.md §5).

Offline object masks (``robustdepth priors masks``, batch slot ``"masks"``: B×H×W int64, 0 = void)
enter training in three ways, on top of Syn2Real's real-adaptation stage:

* **SRC** (``rosam_src``): unit-normalised decoder features of each scale are pulled towards their
  region's prototype (the re-normalised mean feature, on the sphere) and pushed from the other regions'
  of the same image — InfoNCE with temperature τ_c.
* **AROM** (``providers.rosam``): per image and region, mean μ and std σ of the teacher's inverse depth;
  δ = |d_t − μ|/σ, adaptive threshold τ = τ0 + λσ, outlier mask M_out = 1 − S((S(δ − τ) − 0.5)/κ).
  **L_rgl** (``rosam_rgl``) = mean (1 − M_out)·(d_s − μ)²/σ² pulls outliers towards their region's statistics.
* **ORE** (``providers.rosam``): the photometric error of the teacher's depth and pose (min over sources,
  no auto-masking), averaged per region and compared with the image mean: R = exp(−β·max(0, ē_r − ē)/ē),
  W_rel = R + ε. A wrongly scaled but uniform object has low error at most of its pixels (false pixel-level
  reliability) but a raised *region* mean, so the whole object is down-weighted.
* **Robust distillation** (``rosam_distill``): L_d = ¼ Σ_k mean M_out·W_cst·W_rel·|d_s − d_t|/d_s.

Region statistics use ``index_add`` over (image, region) ids — never a Python loop over regions. Void
pixels (label 0) never contribute: M_out = 1, W_rel = 1, no L_rgl, no SRC. Every scale's disparity is
upsampled to the input resolution (as Syn2Real's L_cd here), so the full-resolution maps apply at every
k; SRC works at each decoder scale's own resolution with the masks resized by nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustdepth.geometry import Camera, Pose, warp
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.losses.distill import relative_l1
from robustdepth.losses.photometric import photometric_error
from robustdepth.losses.syn2real import consistency_weight
from robustdepth.priors import masks as _masks  # noqa: F401  (registers providers.masks and its sample hook)
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
    """Nearest-neighbour resize of B×H×W integer labels (exact for labels < 2²⁴)."""
    labels = _labels_bhw(labels)
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


# ------------------------------------------------------------------------------------------------- AROM


@dataclass
class AromMaps:
    """AROM outputs at the labels' resolution (B×1×H×W): outlier mask, region mean and std (σ + eps)."""

    m_out: Tensor
    mu: Tensor
    sigma: Tensor
    valid: Tensor  # B×1×H×W bool: pixel is in a kept region


def sharpened_outlier_mask(delta: Tensor, tau: Tensor, kappa: float) -> Tensor:
    """M_out = 1 − S((S(δ − τ) − 0.5)/κ): ≈1 for inliers, 0.5 at δ = τ, ≈0 for outliers."""
    return 1.0 - torch.sigmoid((torch.sigmoid(delta - tau) - 0.5) / kappa)


def adaptive_outlier_mask(d_teacher: Tensor, index: RegionIndex, tau0: float = 2.0, lam: float = 1.0,
                          kappa: float = 0.05, sigma_eps: float = 1e-6) -> AromMaps:
    """AROM on the teacher's scaled inverse depth (no gradient). Void pixels: M_out = 1, μ = d_t, σ = 1."""
    with torch.no_grad():
        d_t = d_teacher.detach()
        mean, std = region_mean_std(d_t, index)
        mu = to_pixels(mean, index, 0.0)
        sigma = to_pixels(std + sigma_eps, index, 1.0)
        valid = index.valid.unsqueeze(1)
        mu = torch.where(valid, mu, d_t)
        delta = (d_t - mu).abs() / sigma
        m_out = sharpened_outlier_mask(delta, tau0 + lam * sigma, kappa)
        m_out = torch.where(valid, m_out, torch.ones_like(m_out))
    return AromMaps(m_out, mu, sigma, valid)


def regional_gaussian_likelihood(d_student: Tensor, arom: AromMaps, sigma_floor: float = 0.0) -> Tensor:
    """L_rgl = mean_p (1 − M_out)·(d_s − μ)²/σ'² over all pixels, σ' = max(σ, floor·μ); void pixels give 0.

    ``sigma_floor`` is relative to the region's mean inverse depth (0 = the literal formula). It bounds
    1/σ² in near-constant regions: there the sharpened sigmoid still leaves 1 − M_out ≈ 5e-4 at inliers
    (S(−τ0) = 0.12 is not 0), and with σ ≈ 1e-6 that leak would dominate the loss and its gradient.
    Relative, because disparity errors are judged relatively throughout (|d_s − d_t|/d_s).
    """
    sigma = torch.maximum(arom.sigma, sigma_floor * arom.mu.abs()) if sigma_floor > 0 else arom.sigma
    per_pixel = (1.0 - arom.m_out) * (d_student - arom.mu) ** 2 / sigma**2
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
                    max_pixels: int = 4096, min_region_pixels: int = 4,
                    detach_prototypes: bool = False) -> Tensor | None:
    """SRC at one scale: InfoNCE between sampled unit features and their image's region prototypes.

    ``features`` B×C×h×w, ``labels`` B×h×w (already at this resolution). Prototypes use *every* pixel of a
    region; the loss averages over the sampled pixels of all images. None when no region survives.
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
    return F.cross_entropy(logits[chosen_valid], target[chosen_valid])


# ------------------------------------------------------------------------------------------ the provider


@dataclass
class RosamConfig(ProviderConfig):
    """AROM and ORE settings shared by ``rosam_distill`` and ``rosam_rgl`` (METHODS.md §5 c)."""

    tau0: float = 2.0  # UNSPECIFIED (suggested): AROM base threshold, a "2σ" rule
    lam: float = 1.0  # UNSPECIFIED (suggested): τ = τ0 + λσ; σ is in disparity units, tune λ against typical σ_i
    kappa: float = 0.05  # UNSPECIFIED (suggested): sharpening S_κ(u) = S((u − 0.5)/κ)
    sigma_eps: float = 1e-6  # UNSPECIFIED (suggested): added to σ (single-pixel regions have σ = 0)
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
        return adaptive_outlier_mask(self.teacher_disp, self.index, cfg.tau0, cfg.lam, cfg.kappa, cfg.sigma_eps)

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

    def pose(self, frame_id: int) -> Pose:
        """T_target→source for ORE's warp, from the pose net ``providers.rosam.ore_pose`` names."""
        ctx, which = self.ctx, self.cfg.ore_pose
        if which == "student":
            return ctx.pose(frame_id)
        if which == "auto":
            teacher = ctx.provide("teacher")
            has_pose = getattr(teacher, "_pose_net", None) is not None
            which = "teacher" if has_pose or not ctx.cfg.providers.day_model.enabled else "day_model"
        return ctx.provide(which).pose(frame_id)

    @cached_property
    def w_rel(self) -> Tensor:
        return object_reliability(self.photometric, self.index, self.cfg.ore_beta, self.cfg.ore_eps)


@register_provider
class RosamPriors(Provider):
    """``ctx.provide("rosam")`` → :class:`RegionPriors` (needs ``providers.masks`` and ``providers.teacher``)."""

    name = "rosam"
    Config = RosamConfig

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        if cfg.ore_depth not in ("teacher", "student"):
            raise ValueError(f"providers.rosam.ore_depth={cfg.ore_depth!r}: use teacher or student")
        if cfg.ore_pose not in ("auto", "teacher", "day_model", "student"):
            raise ValueError(f"providers.rosam.ore_pose={cfg.ore_pose!r}: use auto, teacher, day_model or student")
        if cfg.min_region_pixels < 1 or cfg.kappa <= 0:
            raise ValueError(f"providers.rosam: need min_region_pixels >= 1 and kappa > 0, got "
                             f"{cfg.min_region_pixels} and {cfg.kappa}")
        for needed in ("masks", "teacher"):
            if not root_cfg.providers[needed].enabled:
                raise ValueError(f"providers.rosam needs providers.{needed}.enabled=true")

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
            logs["m_out"] = float(priors.arom.m_out.mean())
        if cfg.use_ore:
            shared = shared * priors.w_rel
            logs["w_rel"] = float(priors.w_rel.mean())
        total = torch.zeros((), device=ctx.device)
        for k in ctx.scales:
            d_t = teacher.scaled_disp(k)
            weight = shared
            if cfg.use_cst:
                weight = weight * consistency_weight(d_t, ctx.provide("day_model").scaled_disp(k),
                                                     cfg.cst_beta, cfg.cst_eps)
            total = total + (weight * relative_l1(ctx.scaled_disp_full(cfg.view, k), d_t)).mean()
        return total / len(ctx.scales), logs


@dataclass
class RosamRglConfig(TermConfig):
    weight: float = 0.0  # λ2, UNSPECIFIED (suggested): 0.01
    all_scales: bool = True  # UNSPECIFIED (ours): average over every scale (upsampled) as L_d; false = scale 0 only
    # UNSPECIFIED (ours): L_rgl divides by max(σ, sigma_floor·μ) (0 = the literal formula). Without a floor
    # the sigmoid's ≈5e-4 leak at inliers of near-constant regions (σ ≈ 1e-6) dominates the loss.
    sigma_floor: float = 0.05
    view: str = "input"


@register_loss
class RosamRglLoss(LossTerm):
    """Regional Gaussian likelihood, weighted by AROM's 1 − M_out (non-local pull inside outlier regions)."""

    name = "rosam_rgl"
    Config = RosamRglConfig
    requires = ("teacher", "rosam")

    def forward(self, ctx: StepContext) -> Tensor:
        arom = ctx.provide("rosam").arom
        scales = ctx.scales if self.cfg.all_scales else [0]
        total = sum(regional_gaussian_likelihood(ctx.scaled_disp_full(self.cfg.view, k), arom, self.cfg.sigma_floor)
                    for k in scales)
        return total / len(scales)


@dataclass
class RosamSrcConfig(TermConfig):
    weight: float = 0.0  # λ1, UNSPECIFIED (suggested): 0.05
    temperature: float = 0.1  # UNSPECIFIED (suggested): τ_c
    # UNSPECIFIED (suggested): the four decoder upconv outputs (1/1, 1/2, 1/4, 1/8) = model scales 0..3
    scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    max_pixels: int = 4096  # UNSPECIFIED (suggested): sampled pixels per image per scale
    min_region_pixels: int = 4  # UNSPECIFIED (suggested): regions smaller than this at a scale are dropped
    detach_prototypes: bool = False  # UNSPECIFIED (suggested): prototypes keep their gradient
    view: str = "input"


@register_loss
class RosamSrcLoss(LossTerm):
    """SRC: region-prototype InfoNCE on the student's decoder features, averaged over scales."""

    name = "rosam_src"
    Config = RosamSrcConfig
    requires = ("masks",)

    def forward(self, ctx: StepContext) -> Tensor | None:
        cfg = self.cfg
        labels = ctx.provide("masks")
        out = ctx.depth(cfg.view)
        model_scales = list(ctx.scales)
        losses = []
        for s in cfg.scales:
            if s not in model_scales:
                raise ValueError(f"losses.rosam_src.scales has {s}, the model's scales are {model_scales}")
            feats = out.features[model_scales.index(s)]
            value = region_contrast(feats, resize_labels(labels, tuple(feats.shape[-2:])), ctx.generator,
                                    cfg.temperature, cfg.max_pixels, cfg.min_region_pixels, cfg.detach_prototypes)
            if value is not None:
                losses.append(value)
        return torch.stack(losses).mean() if losses else None


__all__ = [
    "AromMaps", "RegionIndex", "RegionPriors", "RosamConfig", "RosamDistillLoss", "RosamPriors", "RosamRglLoss",
    "RosamSrcLoss", "adaptive_outlier_mask", "min_photometric_error", "object_reliability", "region_contrast",
    "region_index", "region_mean", "region_mean_std", "regional_gaussian_likelihood", "resize_labels",
    "sharpened_outlier_mask", "to_pixels",
]
