"""Providers (teachers, priors, masks, …); importing this package registers them all."""

from robustdepth.priors.base import PROVIDERS, Provider, ProviderConfig, ProviderSet, register_provider

__all__ = ["PROVIDERS", "Provider", "ProviderConfig", "ProviderSet", "register_provider"]
