"""The embedded all-weather driving world: procedural street scenes ray-cast in torch, with exact depth,
poses and object ids, rendered in clear, night, rain, fog and snow.

``generate(preset, seed, out)`` writes a world to disk (layout in :mod:`robustdepth.world.writer`;
``ensure_world`` reuses a finished one);
``show(root)`` writes a gallery PNG; ``PRESETS`` lists the size presets.

The presets are plain data and import at once; the renderer (torch) and the gallery (matplotlib) import on
first use, so ``robustdepth world --help`` and its argument errors do not pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustdepth.world.presets import CONDITIONS, PRESETS, SPLITS, Preset, get_preset

_LAZY = {"show": "robustdepth.world.gallery", "VERSION": "robustdepth.world.writer",
         "WorldExistsError": "robustdepth.world.writer", "generate": "robustdepth.world.writer",
         "ensure_world": "robustdepth.world.writer"}

__all__ = ["CONDITIONS", "PRESETS", "SPLITS", "VERSION", "Preset", "WorldExistsError", "ensure_world", "generate",
           "get_preset", "show"]


def __getattr__(name: str) -> Any:
    """``show``, ``generate``, ``ensure_world``, ``VERSION`` and ``WorldExistsError`` from their modules, imported
    on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robustdepth.world' has no attribute {name!r}")
