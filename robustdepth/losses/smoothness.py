"""Edge-aware disparity smoothness (Monodepth2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from robustdepth.losses.base import LossTerm, TermConfig, register_loss

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean |∂disp| weighted by exp(−|∂image|) (image gradients averaged over channels)."""
    grad_disp_x = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    grad_disp_y = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    grad_img_x = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


def mean_normalised(disp: torch.Tensor) -> torch.Tensor:
    """Disparity divided by its per-image mean (Monodepth2: removes the scale from the smoothness)."""
    return disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)


@dataclass
class SmoothnessConfig(TermConfig):
    weight: float = 1e-3  # Monodepth2's disparity_smoothness
    view: str = "input"


@register_loss
class SmoothnessLoss(LossTerm):
    """Σ_s smooth(disp_s / mean, clean image at scale s) / 2^s, averaged over scales (Monodepth2)."""

    name = "smoothness"
    Config = SmoothnessConfig

    def forward(self, ctx: StepContext) -> torch.Tensor:
        disps = ctx.depth(self.cfg.view).disp
        total = torch.zeros((), device=ctx.device)
        for scale in ctx.scales:
            total = total + edge_aware_smoothness(mean_normalised(disps[scale]), ctx.color(0, scale)) / 2**scale
        return total / len(ctx.scales)
