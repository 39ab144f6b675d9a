"""Velocity supervision: metric scale from known ego motion (md4all, PackNet-SfM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from robustdepth.data.base import translation_key
from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


@dataclass
class VelocityConfig(TermConfig):
    weight: float = 0.0  # md4all: 0.02


@register_loss
class VelocityLoss(LossTerm):
    """mean over sources of | ‖t̂_{t→s}‖ − ‖t^gt_{t→s}‖ |, the GT magnitude from ego speed or poses."""

    name = "velocity"
    Config = VelocityConfig
    needs_pose = True

    def forward(self, ctx: StepContext) -> torch.Tensor:
        total = torch.zeros((), device=ctx.device)
        for f in ctx.source_ids:
            key = translation_key(f)
            if key not in ctx.batch:
                raise KeyError(f"losses.velocity needs batch[{key!r}] (ego-motion magnitude), but dataset "
                               f"{ctx.cfg.data.dataset!r} provides no poses or speeds; set losses.velocity.weight=0")
            predicted = ctx.pose(f).translation.norm(dim=-1)
            total = total + (predicted - ctx.batch[key].to(predicted)).abs().mean()
        return total / len(ctx.source_ids)
