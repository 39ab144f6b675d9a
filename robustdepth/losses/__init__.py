"""Loss terms, one module per method family; importing this package registers them all."""

from robustdepth.losses import photometric, sec, smoothness, velocity  # noqa: F401  (registration)
from robustdepth.losses import distill  # noqa: F401  (registration: md4all-DD / ACDepth L_d)
from robustdepth.losses import syn2real  # noqa: F401  (registration: Syn2Real RA)
from robustdepth.losses import acdepth  # noqa: F401  (registration: ACDepth OGD + L_c)
from robustdepth.losses import rosam  # noqa: F401  (registration: RoSAMDepth SRC/AROM/L_rgl/ORE + masks)
from robustdepth.losses.base import LOSSES, LossSet, LossTerm, TermConfig, register_loss

__all__ = ["LOSSES", "LossSet", "LossTerm", "TermConfig", "register_loss"]
