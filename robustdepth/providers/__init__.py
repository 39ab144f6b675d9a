"""Providers (teachers, priors, masks, …); importing this package registers them all."""

from robustdepth.providers import (
    depth_prior,  # noqa: F401  (registration: OGD relative-depth prior)
    latency_queue,  # noqa: F401  (registration: SEC-Depth)
    masks,  # noqa: F401  (registration: RoSAMDepth object masks)
    rosam,  # noqa: F401  (registration: RoSAMDepth region priors, AROM + ORE)
    teacher,  # noqa: F401  (registration: teacher, day_model)
)
from robustdepth.providers.base import PROVIDERS, Provider, ProviderConfig, ProviderSet, register_provider

__all__ = ["PROVIDERS", "Provider", "ProviderConfig", "ProviderSet", "register_provider"]
