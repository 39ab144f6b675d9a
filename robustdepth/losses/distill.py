"""md4all-DD day distillation (Gasperini et al., ICCV 2023), also ACDepth's output distillation L_d.

    L_DD = ¼ Σ_k mean_p |d^S_k(I_input) − d^T_k(I_clean)| / d^S_k(I_input)

on scaled inverse depth d = d_min + (d_max − d_min)·σ, every scale upsampled to the input resolution,
normalised by the STUDENT's value as md4all's code does (METHODS.md §1 c, §6.1). The student sees the
``input`` view (degraded where the supply degraded the sample, else the jittered clean frame); the
frozen teacher sees the clean, un-jittered frame. The same term is ACDepth's L_d (weight 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


def relative_l1(d_student: Tensor, d_teacher: Tensor) -> Tensor:
    """Per-pixel |d_S − d_T| / d_S: the kernel of every distillation loss of this family (teacher detached)."""
    if d_student.shape != d_teacher.shape:
        raise ValueError(f"relative_l1: student {tuple(d_student.shape)} and teacher {tuple(d_teacher.shape)} "
                         "shapes differ")
    return (d_student - d_teacher.detach()).abs() / d_student


@dataclass
class DistillConfig(TermConfig):
    weight: float = 0.0  # md4all-DD / ACDepth L_d: 1.0
    view: str = "input"  # the student's view (md4all: the translated, augmented input)


@register_loss
class DistillLoss(LossTerm):
    """md4all-DD: multi-scale relative L1 between student and frozen-teacher scaled inverse depth."""

    name = "distill"
    Config = DistillConfig
    requires = ("teacher",)

    def forward(self, ctx: StepContext) -> Tensor:
        teacher = ctx.provide("teacher")
        total = torch.zeros((), device=ctx.device)
        for k in ctx.scales:
            total = total + relative_l1(ctx.scaled_disp_full(self.cfg.view, k), teacher.scaled_disp(k)).mean()
        return total / len(ctx.scales)


__all__ = ["DistillConfig", "DistillLoss", "relative_l1"]
