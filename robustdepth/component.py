"""What loss terms and providers share: a named, configured module whose class validates its own section.

A component class has a ``name`` (its key under ``losses`` or ``providers``) and a ``Config`` dataclass (its
section's schema and defaults). :meth:`Component.check_config` holds the section's *static* checks — allowed
values, ranges, other sections it needs — raising :class:`~robustdepth.config.ConfigError` naming the key; they
run when a config is built (``robustdepth.configure.validate``, so ``robustdepth config`` and every loader reject a
bad value before any work) and again when the component is constructed. Checks that need files or data belong
in ``__init__``. :func:`register` adds a class to its registry under its unique name.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from torch import nn


class Component(nn.Module):
    """Base of :class:`~robustdepth.losses.base.LossTerm` and :class:`~robustdepth.providers.base.Provider`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__()
        type(self).check_config(cfg, root_cfg)
        self.cfg = cfg
        self.root_cfg = root_cfg

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        """Static checks of the section ``cfg`` within the whole config ``root_cfg`` (module docstring)."""


C = TypeVar("C", bound=type[Component])


def register(registry: dict[str, Any], kind: str, cls: C) -> C:
    """``registry[cls.name] = cls``; a missing or repeated name is an error naming the class."""
    if not cls.name or cls.name in registry:
        raise ValueError(f"{kind} {cls.__name__} needs a unique name, got {cls.name!r}")
    registry[cls.name] = cls
    return cls


__all__ = ["Component", "register"]
