"""Providers: things a recipe plugs in that are not the trained networks.

A provider turns the current batch into something loss terms read — a frozen teacher's
prediction, a relative-depth prior, object masks, a queue of past models — from a live model or
an offline cache, selected in ``providers.<name>``. Loss terms ask ``ctx.provide(name)``; the
value is computed once per step and shared. Providers that keep training state (e.g. a queue of
snapshots) set ``stateful = True`` and are saved in checkpoints.
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


@dataclass
class ProviderConfig:
    enabled: bool = False


class Provider(Component):
    """Base class (a :class:`~robustdepth.component.Component`): ``name`` (config key under ``providers``),
    ``Config`` dataclass, ``stateful`` (its state is saved in checkpoints)."""

    Config: ClassVar[type] = ProviderConfig
    stateful: ClassVar[bool] = False

    @classmethod
    def is_enabled(cls, cfg: Any) -> bool:
        return bool(cfg.enabled)

    def forward(self, ctx: StepContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, models: Any) -> None:
        """Called once the trained networks exist (e.g. to copy them)."""

    def after_step(self, ctx: StepContext) -> None:
        """Called after each optimiser step."""


def in_step_numerics(net: nn.Module, train: Any) -> nn.Module:
    """A frozen network laid out for the trainer's network passes (``StepContext.run_depth`` / ``run_pose``, which
    run it under the step's autocast): channels_last when ``train.channels_last``, and under
    ``train.precision=bf16`` its conv weights and biases stored in bf16 once. Those are exactly the values
    autocast casts them to on every call (the same rounding of the same fp32 weights), so its outputs are
    unchanged, bit for bit, while a step no longer re-reads and re-casts its ~14 M weights. BatchNorm and
    everything autocast leaves in fp32 stay fp32."""
    if train.channels_last:
        net.to(memory_format=torch.channels_last)
    if train.precision == "bf16":
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.to(torch.bfloat16)
    return net


PROVIDERS: dict[str, type[Provider]] = {}


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator: ``providers.<cls.name>`` becomes a config section and ``ctx.provide(cls.name)`` works."""
    return register(PROVIDERS, "provider", cls)


class ProviderSet(nn.Module):
    """The providers a recipe enables."""

    def __init__(self, root_cfg: Any) -> None:
        super().__init__()
        self.providers = nn.ModuleDict({
            name: cls(root_cfg.providers[name], root_cfg)
            for name, cls in PROVIDERS.items() if cls.is_enabled(root_cfg.providers[name])
        })

    def check_required(self, required: dict[str, list[str]]) -> None:
        """Fail at start-up, not mid-run, when an enabled loss needs a provider that is off."""
        missing = {p: terms for p, terms in required.items() if p not in self.providers}
        if missing:
            lines = [f"provider {p!r} (needed by loss {', '.join(t)}) is not enabled: set providers.{p}.* in the "
                     "recipe (every key: 'robustdepth config RECIPE')" for p, t in missing.items()]
            raise ConfigError("; ".join(lines))

    def get(self, name: str, ctx: StepContext) -> Any:
        if name not in self.providers:
            raise KeyError(f"provider {name!r} is not enabled; enabled: {sorted(self.providers)}")
        return self.providers[name](ctx)

    def setup(self, models: Any) -> None:
        for p in self.providers.values():
            p.setup(models)

    def after_step(self, ctx: StepContext) -> None:
        for p in self.providers.values():
            p.after_step(ctx)

    def training_state(self) -> dict[str, Any]:
        return {n: p.state_dict() for n, p in self.providers.items() if p.stateful}

    def load_training_state(self, state: dict[str, Any]) -> None:
        for name, sd in state.items():
            if name in self.providers:
                self.providers[name].load_state_dict(sd)
