"""SEC-Depth's self-evolution contrastive loss (SECL; Cao et al., AAAI 2026; docs/methods.md § SEC-Depth).

Each full-resolution sigmoid disparity x ∈ [0, 1] is encoded as a soft interval distribution over N
equal bins (centres c_n = (n − ½)/N, Gaussian kernel of bandwidth h, normalised over bins), and
distributions are compared with the Jensen–Shannon divergence (natural log, ≤ ln 2). With
anchor A = current model on the degraded frame, positive P = current model on the clean frame
(stop-gradient by default) and negative N = a sampled latency-queue member (a past training stage) on
the anchor's own image:

    L = JS(A, P) + δ·max(α1(t) − J_AN, 0) + J_AN·max(α2 − J_AN, 0),   J_AN = JS(A, N),
    α1(t) = a·exp(−15·t/T) + c   (t, T in optimiser steps),   α2 = 0.005,

the literal form of the paper (the last factor J_AN may be detached with ``stop_grad_j_factor``).
``per_pixel`` JS is averaged over pixels and samples first, then the hinges act on the means; ``histogram``
pools each image's soft bins into one histogram and compares those. Only samples that are degraded this
step enter the loss (``degraded_only``; the loss selects the rows, the queue runs on the whole batch), and
only on steps where the degradation gate (``degrade.every_n_steps`` = S) is open. Before the queue exists
(warm-up) only JS(A, P) is applied (``without_queue``); ``negative: false`` applies JS(A, P) alone throughout
and needs no queue (the positive-only control).

The term needs a degraded view in the batch: an online/offline degradation supply or a dataset that fills
the degraded slots itself (KITTI with ``data.options.weatherkitti``). That is checked on the batch, at run
time, because only the batch knows who filled the slots.

Logs (TensorBoard, per SECL step): ``j_ap``, ``j_an``, ``alpha1``, ``hinge_active`` (fraction of the rows whose
own J_AN lies below α1), ``member`` and ``negative_age`` (steps since that member was written), and the
queue's cumulative refreshes by reason (``refreshes_periodic``, ``refreshes_forced``).

Memory: the soft bins of one map are B×H×W×N (N on the last axis). They are never stored for the backward
pass: pixels are processed in chunks under activation checkpointing (``chunk_pixels``), so at most one
chunk's bins (×3 maps) exist at a time and the backward recomputes them from the B×H×W disparities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from robustdepth.config import ConfigError
from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

LOG_EPS = 1e-8
MODES = ("per_pixel", "histogram")
RAMPS = ("exp", "linear", "constant")


# -- encoding and divergence (pure functions) ---------------------------------------------------------
def unit_bin_centres(num_bins: int, device: torch.device | None = None) -> Tensor:
    """c_n = (n − ½)/N, n = 1..N: the centres of N equal intervals of [0, 1]."""
    return (torch.arange(num_bins, device=device, dtype=torch.float32) + 0.5) / num_bins


def soft_bins(x: Tensor, num_bins: int = 64, bandwidth: float | None = None) -> Tensor:
    """Gaussian soft assignment of values ``x`` to N interval centres, on a new last axis: shape (*x.shape, N).

    P_n(x) = exp(−(x − c_n)²/2h²) / Σ_m exp(−(x − c_m)²/2h²), computed as a softmax (stable for any h);
    ``bandwidth`` None or ≤ 0 means h = 1/N.
    """
    if num_bins < 2:
        raise ValueError(f"soft_bins needs at least 2 bins, got {num_bins}")
    h = 1.0 / num_bins if bandwidth is None or bandwidth <= 0 else float(bandwidth)
    centres = unit_bin_centres(num_bins, x.device)
    logits = -((x.float().unsqueeze(-1) - centres) ** 2) / (2 * h * h)
    return torch.softmax(logits, dim=-1)


def js_divergence(p: Tensor, q: Tensor, dim: int = -1, eps: float = LOG_EPS) -> Tensor:
    """JS(P‖Q) = ½KL(P‖M) + ½KL(Q‖M), M = (P+Q)/2, natural log, ``eps`` inside the logs; summed over ``dim``."""
    if p.shape != q.shape:
        raise ValueError(f"js_divergence needs equal shapes, got {tuple(p.shape)} and {tuple(q.shape)}")
    m = 0.5 * (p + q)
    log_m = torch.log(m + eps)
    kl_pm = (p * (torch.log(p + eps) - log_m)).sum(dim)
    kl_qm = (q * (torch.log(q + eps) - log_m)).sum(dim)
    return 0.5 * (kl_pm + kl_qm)


def margin_alpha1(progress: float, a: float = 0.3, c: float = 0.02, decay: float = 15.0) -> float:
    """Dynamic margin α1(t) = a·exp(−decay·t/T) + c, ``progress`` = t/T ∈ [0, 1]."""
    return a * math.exp(-decay * progress) + c


def exp_ramp(epoch: float, start: float = 0.01, plateau: float = 0.1, doubling_epochs: float = 2.0) -> float:
    """w(e) = min(plateau, start·2^(e/doubling)); defaults give min(0.1, 0.01·2^(e/2))."""
    return min(plateau, start * 2.0 ** (epoch / doubling_epochs))


def linear_ramp(epoch: float, start: float = 0.01, plateau: float = 0.1, ramp_epochs: float = 5.0) -> float:
    """w(e) = start + (plateau − start)·min(1, e/ramp_epochs): linear to the plateau over ``ramp_epochs``."""
    return start + (plateau - start) * min(1.0, epoch / ramp_epochs if ramp_epochs > 0 else 1.0)


def _chunked(fn: Callable[..., tuple[Tensor, ...]], maps: list[Tensor], chunk: int) -> list[Tensor]:
    """Apply ``fn`` to pixel chunks (last axis) of B×HW maps under activation checkpointing, concatenating
    the chunk outputs along their last axis (fn returns tensors whose last axis is the chunk, or B×N sums)."""
    total = maps[0].shape[-1]
    if chunk <= 0 or chunk >= total:
        return list(fn(*maps))
    pieces: list[tuple[Tensor, ...]] = []
    for start in range(0, total, chunk):
        sl = [m[..., start:start + chunk] for m in maps]
        grad = any(m.requires_grad for m in sl)
        pieces.append(checkpoint(fn, *sl, use_reentrant=False) if grad and torch.is_grad_enabled() else fn(*sl))
    return [torch.cat([p[i] for p in pieces], dim=-1) for i in range(len(pieces[0]))]


def pixel_js_rows(anchor: Tensor, positive: Tensor, negative: Tensor | None, num_bins: int,
                  bandwidth: float | None, chunk: int = 0) -> tuple[Tensor, Tensor | None]:
    """Per-sample mean per-pixel JS(A, P) and JS(A, N) (shape R) of R×1×H×W (or R×HW) disparities."""
    maps = [t.reshape(t.shape[0], -1) for t in (anchor, positive) + ((negative,) if negative is not None else ())]

    def per_pixel(a: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
        pa = soft_bins(a, num_bins, bandwidth)
        return tuple(js_divergence(pa, soft_bins(o, num_bins, bandwidth)) for o in others)

    values = _chunked(per_pixel, maps, chunk)
    return values[0].mean(-1), (values[1].mean(-1) if negative is not None else None)


def histogram_js_rows(anchor: Tensor, positive: Tensor, negative: Tensor | None, num_bins: int,
                      bandwidth: float | None, chunk: int = 0) -> tuple[Tensor, Tensor | None]:
    """Per-sample JS (shape R) between pooled soft-bin histograms (the mean of P_X over each image's pixels)."""
    maps = [t.reshape(t.shape[0], -1) for t in (anchor, positive) + ((negative,) if negative is not None else ())]
    pixels = maps[0].shape[-1]

    def sums(*xs: Tensor) -> tuple[Tensor, ...]:  # R×N×1 partial sums, concatenated over chunks
        return tuple(soft_bins(x, num_bins, bandwidth).sum(1).unsqueeze(-1) for x in xs)

    parts = _chunked(sums, maps, chunk)
    hists = [p.sum(-1) / pixels for p in parts]  # R×N
    j_ap = js_divergence(hists[0], hists[1])
    j_an = js_divergence(hists[0], hists[2]) if negative is not None else None
    return j_ap, j_an


def _means(values: tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
    return values[0].mean(), (values[1].mean() if values[1] is not None else None)


def pixel_js(anchor: Tensor, positive: Tensor, negative: Tensor | None, num_bins: int, bandwidth: float | None,
             chunk: int = 0) -> tuple[Tensor, Tensor | None]:
    """Mean per-pixel JS(A, P) and JS(A, N) over all samples and pixels (equal-sized images)."""
    return _means(pixel_js_rows(anchor, positive, negative, num_bins, bandwidth, chunk))


def histogram_js(anchor: Tensor, positive: Tensor, negative: Tensor | None, num_bins: int,
                 bandwidth: float | None, chunk: int = 0) -> tuple[Tensor, Tensor | None]:
    """JS between per-image pooled soft-bin histograms, averaged over images."""
    return _means(histogram_js_rows(anchor, positive, negative, num_bins, bandwidth, chunk))


def secl(j_ap: Tensor, j_an: Tensor, alpha1: float, alpha2: float, delta: float,
         stop_grad_j_factor: bool = False) -> Tensor:
    """L_c = J_AP + δ·max(α1 − J_AN, 0) + J_AN·max(α2 − J_AN, 0) (the J_AN factor detached on request)."""
    factor = j_an.detach() if stop_grad_j_factor else j_an
    return j_ap + delta * torch.relu(alpha1 - j_an) + factor * torch.relu(alpha2 - j_an)


# -- the loss term ------------------------------------------------------------------------------------
@dataclass
class SECConfig(TermConfig):
    # weight = the plateau of the ramp w(e) (0 = off; SEC-Depth: 0.1 suggested). The applied weight is ramp(e).
    weight: float = 0.0
    ramp: str = "exp"  # exp: min(weight, ramp_start·2^(e/ramp_doubling_epochs)) | linear | constant (UNSPECIFIED)
    ramp_start: float = 0.01  # w(0) (paper: starts at 0.01)
    ramp_doubling_epochs: float = 2.0  # exp ramp: doubles every 2 epochs (suggested)
    ramp_epochs: float = 5.0  # linear ramp: reaches the plateau after 5 epochs (suggested alternative)
    ramp_continuous: bool = False  # False: integer epochs ("epoch by epoch", Eq. 12); True: fractional epochs
    num_bins: int = 64  # N (UNSPECIFIED, suggested 64)
    bandwidth: float = 0.0  # h; 0 = 1/N (UNSPECIFIED, suggested 1/N)
    mode: str = "per_pixel"  # per_pixel (JS averaged over pixels) | histogram (per-image pooled) (UNSPECIFIED)
    margin_a: float = 0.3  # a in α1 (UNSPECIFIED, suggested 0.3)
    margin_c: float = 0.02  # c in α1 (UNSPECIFIED, suggested 0.02)
    margin_decay: float = 15.0  # the 15 in exp(−15 t/T) (paper)
    alpha2: float = 0.005  # fixed margin α2 (paper)
    delta: float = 1.0  # δ, weight of the α1 hinge (UNSPECIFIED, suggested 1)
    stop_grad_j_factor: bool = False  # detach the J_AN factor of J_AN·max(α2 − J_AN, 0) (literal form: False)
    stop_grad_positive: bool = True  # positive has no gradient (UNSPECIFIED, suggested True: avoids collapse)
    # Positive view: clean_aug (jittered clean frame) carries the same colour jitter and flip as the degraded
    # input, so A and P differ only by the weather; "clean" would also contrast the jitter away.
    positive_view: str = "clean_aug"
    # Anchor view: "input" is the student's own pass; on gated steps it is pixel-identical to "degraded"
    # (non-degraded samples hold the clean_aug frame in both), so it is the same anchor without an extra pass.
    # The negative always runs on the anchor's view (the same image, as the paper's D_A and D_N).
    anchor_view: str = "input"
    degraded_only: bool = True  # only samples that got a degradation this step enter the loss
    without_queue: str = "positive_only"  # before the queue is filled: positive_only (JS(A,P)) | off
    negative: bool = True  # False: JS(A, P) alone, no latency queue needed (the positive-only control)
    chunk_pixels: int = 16384  # pixels per checkpointed chunk (0 = all at once)


@register_loss
class SECLoss(LossTerm):
    """SECL (see the module docstring); needs the ``latency_queue`` provider (unless ``negative: false``) and
    a degraded view in the batch."""

    name = "sec"
    Config = SECConfig
    requires = ("latency_queue",)

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        checks = {"mode": (cfg.mode, MODES), "ramp": (cfg.ramp, RAMPS),
                  "without_queue": (cfg.without_queue, ("positive_only", "off")),
                  "positive_view": (cfg.positive_view, ("clean", "clean_aug")),
                  "anchor_view": (cfg.anchor_view, ("input", "degraded"))}
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"losses.sec.{key}={value!r}: use one of {allowed}")
        if cfg.num_bins < 2:
            raise ConfigError(f"losses.sec.num_bins={cfg.num_bins}: need at least 2 bins")

    def __init__(self, cfg: SECConfig, root_cfg: object) -> None:
        super().__init__(cfg, root_cfg)
        if not cfg.negative:
            self.requires = ()  # the positive-only control runs without a queue

    def weight(self, ctx: StepContext) -> float:
        """The ramped weight w(e), plateau = ``weight``."""
        cfg = self.cfg
        epoch = ctx.state.epoch_float if cfg.ramp_continuous else float(ctx.state.epoch)
        if cfg.ramp == "constant":
            return float(cfg.weight)
        if cfg.ramp == "linear":
            return linear_ramp(epoch, cfg.ramp_start, cfg.weight, cfg.ramp_epochs)
        return exp_ramp(epoch, cfg.ramp_start, cfg.weight, cfg.ramp_doubling_epochs)

    def _rows(self, ctx: StepContext) -> Tensor:
        """The batch rows that enter the loss: the degraded ones (``degraded_only``), else all."""
        if self.cfg.degraded_only:
            return ctx.batch["is_degraded"].to(ctx.device).bool()
        return torch.ones(ctx.batch_size, dtype=torch.bool, device=ctx.device)

    def _divergences(self, anchor: Tensor, positive: Tensor, negative: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Per-row J_AP and J_AN (shape R)."""
        cfg = self.cfg
        fn = pixel_js_rows if cfg.mode == "per_pixel" else histogram_js_rows
        return fn(anchor, positive, negative, cfg.num_bins, cfg.bandwidth or None, cfg.chunk_pixels)

    def forward(self, ctx: StepContext) -> tuple[Tensor, dict[str, float]] | None:
        cfg = self.cfg
        if "is_degraded" not in ctx.batch:
            raise ConfigError("losses.sec needs a degraded view, and the batch has none: set degrade.mode/rules "
                              "(e.g. recipe sec_monodepth2), or use a dataset that supplies one "
                              "(data.options.weatherkitti=true on KITTI)")
        if not ctx.degraded_active:
            return None
        rows = self._rows(ctx)
        if not bool(rows.any()):
            return None
        queue = ctx.provide("latency_queue") if cfg.negative else None
        if cfg.negative and queue is None and cfg.without_queue == "off":
            return None
        anchor = ctx.disp_full(cfg.anchor_view, 0)[rows]
        positive = ctx.disp_full(cfg.positive_view, 0, grad=not cfg.stop_grad_positive)[rows]
        negative = queue.disp(cfg.anchor_view)[rows] if queue is not None else None
        j_ap_rows, j_an_rows = self._divergences(anchor, positive, negative)
        j_ap = j_ap_rows.mean()
        logs = {"j_ap": float(j_ap.detach()), "queue_ready": float(queue is not None)}
        if j_an_rows is None or negative is None or queue is None:
            return j_ap, logs
        j_an = j_an_rows.mean()
        alpha1 = margin_alpha1(ctx.state.progress, cfg.margin_a, cfg.margin_c, cfg.margin_decay)
        loss = secl(j_ap, j_an, alpha1, cfg.alpha2, cfg.delta, cfg.stop_grad_j_factor)
        obs = queue.observe(anchor, positive, negative, float(j_an.detach()), float(j_ap.detach()))
        counts = queue.refresh_counts()
        hinge_active = float((j_an_rows.detach() < alpha1).float().mean())
        logs.update({"j_an": obs.j_an, "alpha1": alpha1, "hinge_active": hinge_active,
                     "member": float(obs.member), "negative_age": float(obs.age),
                     "spread_an": obs.spread.an, "spread_ap": obs.spread.ap,
                     "refreshes_forced": float(counts["forced"]), "refreshes_periodic": float(counts["periodic"])})
        return loss, logs
