"""Loss terms: one class per term, one signature, composed by weight from the recipe.

A term reads what it needs from the :class:`~robustdepth.training.context.StepContext` (network
passes and provider outputs are computed on first request and shared between terms) and returns
its *unweighted* value, optionally with extra scalars to log. ``losses.<name>.weight: 0`` turns a
term off; the trainer never knows which method a recipe implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from robustdepth.component import Component, register
from robustdepth.config import ConfigError

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

LossValue = torch.Tensor | tuple[torch.Tensor, dict[str, float]] | None


@dataclass
class TermConfig:
    """Every term's config has a weight; 0 switches the term off."""

    weight: float = 0.0


class LossTerm(Component):
    """Base class of a loss term (a :class:`~robustdepth.component.Component`).

    Class attributes: ``name`` (config key under ``losses``), ``Config`` (dataclass with defaults),
    ``requires`` (provider names it reads), ``needs_pose`` (whether the pose network must exist).
    ``forward`` returns the unweighted value, ``(value, logs)``, or None when inactive this step.
    """

    Config: ClassVar[type] = TermConfig
    requires: ClassVar[tuple[str, ...]] = ()
    needs_pose: ClassVar[bool] = False

    def weight(self, ctx: StepContext) -> float:
        """The weight at this step (terms with ramps override this)."""
        return float(self.cfg.weight)

    def forward(self, ctx: StepContext) -> LossValue:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, ctx: StepContext) -> None:
        """Called after the optimiser step (for terms that keep state)."""


LOSSES: dict[str, type[LossTerm]] = {}


def register_loss(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: ``losses.<cls.name>`` becomes a config section and the term a recipe can weigh."""
    return register(LOSSES, "loss term", cls)


class LossSet(nn.Module):
    """The enabled terms of a recipe, summed by weight."""

    def __init__(self, root_cfg: Any) -> None:
        super().__init__()
        self.terms = nn.ModuleDict({
            name: cls(root_cfg.losses[name], root_cfg)
            for name, cls in LOSSES.items() if float(root_cfg.losses[name].weight) != 0.0
        })
        if not self.terms:
            raise ConfigError("every loss weight is 0: the recipe trains nothing (set losses.<term>.weight)")

    @property
    def needs_pose(self) -> bool:
        return any(t.needs_pose for t in self.terms.values())

    @property
    def required_providers(self) -> dict[str, list[str]]:
        """provider name -> terms that need it."""
        out: dict[str, list[str]] = {}
        for name, term in self.terms.items():
            for provider in term.requires:
                out.setdefault(provider, []).append(name)
        return out

    def forward(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=ctx.device)
        logs: dict[str, float] = {}
        for name, term in self.terms.items():
            weight = term.weight(ctx)
            if weight == 0.0:
                continue
            out = term(ctx)
            if out is None:
                continue
            value, extra = out if isinstance(out, tuple) else (out, {})
            total = total + weight * value
            logs[f"loss/{name}"] = float(value.detach())
            logs.update({f"{name}/{k}": v for k, v in extra.items()})
        logs["loss/total"] = float(total.detach())
        return total, logs

    def after_step(self, ctx: StepContext) -> None:
        for term in self.terms.values():
            term.after_step(ctx)
