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
