"""The embedded all-weather driving world: procedural street scenes ray-cast in torch, with exact depth,
poses and object ids, rendered in clear, night, rain, fog and snow.

``generate(preset, seed, out)`` writes a world to disk (layout in :mod:`robustdepth.world.writer`);
``show(root)`` writes a gallery PNG; ``PRESETS`` lists the size presets.
"""

from robustdepth.world.gallery import show
from robustdepth.world.presets import CONDITIONS, PRESETS, SPLITS, Preset, get_preset
from robustdepth.world.writer import VERSION, WorldExistsError, generate

__all__ = ["CONDITIONS", "PRESETS", "SPLITS", "VERSION", "Preset", "WorldExistsError", "generate", "get_preset",
           "show"]
