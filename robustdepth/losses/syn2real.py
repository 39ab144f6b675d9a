"""Syn2Real-Depth real adaptation (Yan et al., CVPR 2025): consistency-reweighted distillation and the
daytime depth-histogram prior (docs/methods.md § Syn2Real-RA).

* ``syn2real_distill``: L_cd = ¼ Σ_k mean_p W_cst · |d^real − d^syn| / d^real, with
  W_cst = exp(−β |d^syn − d^day| / d^syn) + ε (no gradient; code: β = 1, ε = 1, so W ∈ (1, 2]).
  ``d^syn`` is the frozen teacher (``providers.teacher``), ``d^day`` the frozen Φ_day
  (``providers.day_model``); both see the same un-jittered frame.
* ``syn2real_kl``: a differentiable (soft-binned, vectorised over bins) histogram of the student's
  DEPTH at scale 0 pooled over the batch, compared with a stored day-clear histogram
  (``robustdepth priors histogram``). KL direction: we follow the official CODE,
  ``F.kl_div(log P_adv, P_day, reduction="mean")`` = (1/N) Σ_n P_day log(P_day / P_adv), i.e. KL(P_day ‖ P_adv);
  the paper summary writes KL(P_adv ‖ P_day) — the two differ (docs/methods.md § Syn2Real-RA). Bins the
  prior leaves empty contribute 0 (0·log 0 = 0), so a prior file with exact zeros stays finite.

Cost-volume and pose distillation of the RA stage need the ManyDepth cost volume and are not here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from robustdepth.config import ConfigError
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.losses.distill import relative_l1
from robustdepth.providers.histogram import HISTOGRAM_FORMAT, normalise_histogram, soft_histogram

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

def consistency_weight(d_syn: Tensor, d_day: Tensor, beta: float = 1.0, eps: float = 1.0) -> Tensor:
    """W_cst = exp(−β |d_syn − d_day| / d_syn) + ε per pixel, without gradient (a weight, not a target)."""
    if d_syn.shape != d_day.shape:
        raise ValueError(f"consistency_weight: d_syn {tuple(d_syn.shape)} and d_day {tuple(d_day.shape)} differ")
    with torch.no_grad():
        return torch.exp(-beta * (d_syn - d_day).abs() / d_syn) + eps


def histogram_kl(p_adv: Tensor, p_day: Tensor) -> Tensor:
    """The code's direction: F.kl_div(log P_adv, P_day, 'mean') = (1/N) Σ P_day log(P_day / P_adv).

    ``xlogy`` gives 0·log 0 = 0 (as F.kl_div does) where the prior has an empty bin; the plain product
    would be 0·(−inf) = NaN there.
    """
    if p_adv.shape != p_day.shape:
        raise ValueError(f"histogram_kl: P_adv has {p_adv.shape[-1]} bins, the day prior {p_day.shape[-1]}")
    # Written out (identical to F.kl_div(log P_adv, P_day, reduction="mean"), which warns on every call).
    return (torch.xlogy(p_day, p_day) - p_day * p_adv.log()).mean()


def load_histogram(path: str | Path) -> dict[str, Any]:
    """Read a stored day histogram (JSON written by ``robustdepth priors histogram``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth-histogram prior {path} not found: compute it with "
                                "'robustdepth priors histogram CHECKPOINT --out FILE' (or run 'robustdepth pipeline')")
    data = json.loads(path.read_text())
    if data.get("format") != HISTOGRAM_FORMAT:
        raise ConfigError(f"{path} is not a robustdepth depth histogram (format {data.get('format')!r})")
    return data


@dataclass
class Syn2RealDistillConfig(TermConfig):
    weight: float = 0.0  # Syn2Real RA code: 1
    beta: float = 1.0  # W_cst sharpness (code: 1)
    eps: float = 1.0  # W_cst floor (code: 1, so W ∈ (1, 2])
    view: str = "input"


@register_loss
class Syn2RealDistillLoss(LossTerm):
    """L_cd = ¼ Σ_k mean_p W_cst,k·|d_s,k − d_t,k|/d_s,k: md4all-style relative L1 to the frozen teacher,
    reweighted by teacher/Φ_day agreement (W_cst without gradient; the student gets it through both the
    difference and the 1/d_s normaliser)."""

    name = "syn2real_distill"
    Config = Syn2RealDistillConfig
    requires = ("teacher", "day_model")

    def forward(self, ctx: StepContext) -> tuple[Tensor, dict[str, float]]:
        teacher, day = ctx.provide("teacher"), ctx.provide("day_model")
        total = torch.zeros((), device=ctx.device)
        mean_w = 0.0
        for k in ctx.scales:
            weight = consistency_weight(teacher.scaled_disp(k), day.scaled_disp(k), self.cfg.beta, self.cfg.eps)
            total = total + (weight * relative_l1(ctx.scaled_disp_full(self.cfg.view, k),
                                                  teacher.scaled_disp(k))).mean()
            mean_w += float(weight.mean())
        n = len(ctx.scales)
        return total / n, {"w_cst": mean_w / n}


@dataclass
class Syn2RealKLConfig(TermConfig):
    weight: float = 0.0  # λ_KL: 0.001 nuScenes, 0.01 RobotCar
    prior_path: Any = None  # JSON from 'robustdepth priors histogram' (the pipeline computes it when empty)
    view: str = "input"


@register_loss
class Syn2RealKLLoss(LossTerm):
    """KL(P_day ‖ P_adv) between the stored day-clear depth histogram and the student's batch histogram."""

    name = "syn2real_kl"
    Config = Syn2RealKLConfig

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        if not cfg.prior_path:
            raise FileNotFoundError("losses.syn2real_kl.prior_path is empty: compute the day histogram with "
                                    "'robustdepth priors histogram CHECKPOINT --out FILE' (the pipeline does it)")
        prior = load_histogram(cfg.prior_path)
        self.bins, self.lo, self.hi = int(prior["bins"]), float(prior["min_depth"]), float(prior["max_depth"])
        self.register_buffer("p_day", torch.tensor(prior["probabilities"], dtype=torch.float32), persistent=False)

    def forward(self, ctx: StepContext) -> Tensor:
        depth = ctx.depth_full(self.cfg.view, 0)
        p_adv = normalise_histogram(soft_histogram(depth, self.bins, self.lo, self.hi))
        return histogram_kl(p_adv, self.p_day.to(p_adv))


__all__ = ["HISTOGRAM_FORMAT", "Syn2RealDistillLoss", "Syn2RealKLLoss", "consistency_weight",
           "histogram_kl", "load_histogram", "normalise_histogram", "soft_histogram"]
