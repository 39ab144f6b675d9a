"""Loss terms, one module per method family; importing this package registers them all."""

from robustdepth.losses import (  # noqa: F401  (registration)
    acdepth,
    distill,
    photometric,
    rosam,
    sec,
    smoothness,
    syn2real,
    velocity,
)
from robustdepth.losses.base import LOSSES, LossSet, LossTerm, TermConfig, register_loss

__all__ = ["LOSSES", "LossSet", "LossTerm", "TermConfig", "register_loss"]
