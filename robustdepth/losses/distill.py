"""md4all-DD day distillation (Gasperini et al., ICCV 2023), also ACDepth's output distillation L_d.

    L_DD = ¼ Σ_k mean_p |d^S_k(I_input) − d^T_k(I_clean)| / d^S_k(I_input)

on scaled inverse depth d = d_min + (d_max − d_min)·σ, normalised by the STUDENT's value as md4all's code
does (docs/methods.md § md4all-DD). ``resolution`` says where each scale is compared:

* ``native`` (default, as the official md4all / ACDepth code): scale k of the student against scale k of
  the teacher, both at 2^-k of the input — every pixel of every scale weighs the same within its scale;
* ``full``: every scale bilinearly upsampled to the input resolution first (Monodepth2's photometric
  convention), kept as an option; the two forms differ at scales ≥ 1 only.

The student sees the ``input`` view (degraded where the supply degraded the sample, else the jittered
clean frame); the frozen teacher sees the clean, un-jittered frame. The same term is ACDepth's L_d (weight 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from robustdepth.config import ConfigError
from robustdepth.losses.base import LossTerm, TermConfig, register_loss
from robustdepth.networks import disp_to_depth

if TYPE_CHECKING:
    from robustdepth.providers.teacher import TeacherPrediction
    from robustdepth.training.context import StepContext

RESOLUTIONS = ("native", "full")


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
    resolution: str = "native"  # native: scale k vs scale k at 2^-k (official code) | full: upsampled first


def scale_pair(ctx: StepContext, teacher: TeacherPrediction, view: str, k: int,
               resolution: str) -> tuple[Tensor, Tensor]:
    """(student, teacher) scaled inverse depth of scale ``k``, at 2^-k (``native``) or the input size (``full``)."""
    if resolution == "full":
        return ctx.scaled_disp_full(view, k), teacher.scaled_disp(k)
    student = disp_to_depth(ctx.depth(view).disp[k], ctx.min_depth, ctx.max_depth)[0]
    return student, disp_to_depth(teacher.output.disp[k], teacher.min_depth, teacher.max_depth)[0]


@register_loss
class DistillLoss(LossTerm):
    """md4all-DD: multi-scale relative L1 between student and frozen-teacher scaled inverse depth."""

    name = "distill"
    Config = DistillConfig
    requires = ("teacher",)

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        if cfg.resolution not in RESOLUTIONS:
            raise ConfigError(f"losses.distill.resolution={cfg.resolution!r}: use one of {RESOLUTIONS}")

    def forward(self, ctx: StepContext) -> Tensor:
        teacher = ctx.provide("teacher")
        total = torch.zeros((), device=ctx.device)
        for k in ctx.scales:
            student, target = scale_pair(ctx, teacher, self.cfg.view, k, self.cfg.resolution)
            total = total + relative_l1(student, target).mean()
        return total / len(ctx.scales)


__all__ = ["DistillConfig", "DistillLoss", "relative_l1", "scale_pair"]
