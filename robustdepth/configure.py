"""The full configuration of a run: the fixed sections (:mod:`robustdepth.config`) + one section per registered
loss term and provider, built from recipes and ``key=value`` overrides and validated when it is built.

This module sits one layer above the components and is the one place that lists what registers into a run's
configuration and batch: it imports the two component registries — ``robustdepth.losses``
(``losses.<term>``; ``weight: 0`` = off) and ``robustdepth.providers`` (``providers.<name>``), whose package files
list every component module — and the sample-hook modules of the layers above ``data`` (the degradation
supply; the object masks come with ``robustdepth.providers``); it asks each enabled component to check its own section
(:meth:`robustdepth.component.Component.check_config`). So ``robustdepth config RECIPE KEY=VALUE`` and every
loader reject a bad value with one :class:`~robustdepth.config.ConfigError` line, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from robustdepth.config import (
    fixed_schema,
    merge_overrides,
    merge_recipe,
    merge_stored,
    registry_section,
    validate_fixed,
)
from robustdepth.degrade import supply  # noqa: F401  (sample hook: the degraded view)
from robustdepth.losses import LOSSES
from robustdepth.providers import PROVIDERS  # also registers the object-mask sample hook (priors.masks)


def schema() -> DictConfig:
    """The full default configuration (every key, every default)."""
    return fixed_schema({"losses": registry_section(LOSSES), "providers": registry_section(PROVIDERS)})


def validate(cfg: DictConfig) -> None:
    """The fixed sections' cross-field checks, then each enabled loss term's and provider's own static checks."""
    validate_fixed(cfg)
    for name, term in LOSSES.items():
        if float(cfg.losses[name].weight) != 0.0:
            term.check_config(cfg.losses[name], cfg)
    for name, provider in PROVIDERS.items():
        if provider.is_enabled(cfg.providers[name]):
            provider.check_config(cfg.providers[name], cfg)


def load_config(recipe: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Schema defaults <- recipe chain (base first) <- overlays (``a+b``) <- ``key=value`` overrides, validated."""
    cfg = merge_recipe(schema(), recipe, overrides)
    validate(cfg)
    return cfg


def config_from_dict(data: dict[str, Any], strict: bool = True) -> DictConfig:
    """Rebuild a validated config from a plain dict (e.g. the one stored in a checkpoint).

    ``strict=False`` (inference, frozen teachers) drops keys that newer code no longer has, with a
    warning naming them, so older checkpoints keep loading; resuming training stays strict.
    """
    cfg = merge_stored(schema(), data, strict)
    validate(cfg)
    return cfg


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``key=value`` overrides on an existing config (e.g. one stored in a checkpoint), validated."""
    if not overrides:
        return cfg
    merged = merge_overrides(cfg, overrides)
    validate(merged)
    return merged


__all__ = ["apply_overrides", "config_from_dict", "load_config", "schema", "validate"]
