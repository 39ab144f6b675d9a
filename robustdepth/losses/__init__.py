"""Loss terms, one module per method family; importing this package registers them all."""

from robustdepth.losses import photometric, smoothness, velocity  # noqa: F401  (registration)
from robustdepth.losses.base import LOSSES, LossSet, LossTerm, TermConfig, register_loss

__all__ = ["LOSSES", "LossSet", "LossTerm", "TermConfig", "register_loss"]
