"""Datasets: registered item builders + one :class:`FrameDataset` that makes every sample.

The registries are :mod:`robustdepth.data.registry`; the datasets that register into it are imported at the end
of this file (one list), the sample hooks of the layers above in :mod:`robustdepth.configure`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustdepth.data.base import (
    AugmentSettings,
    DataError,
    FrameDataset,
    FrameItem,
    FrameSequence,
    SampleHook,
    color_key,
    items_with_neighbours,
    read_depth,
    read_rgb,
    translation_key,
)
from robustdepth.data.folder import folder_sequences
from robustdepth.data.registry import (
    DATASETS,
    HOOK_ANNOTATIONS,
    HOOK_NORMALISE,
    HOOK_VIEWS,
    SAMPLE_HOOKS,
    check_options,
    ordered_hook_factories,
    register_dataset,
    register_sample_hook,
)
from robustdepth.data.world import WorldSequence, world_sequences

@register_dataset("folder", options=("condition",))
def _folder_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    condition = data.options.get("condition", "clear")
    sequences = folder_sequences(Path(data.root), data.intrinsics, condition)
    return items_with_neighbours(sequences, frame_ids, [condition])


@register_dataset("world", options=("sequences",))
def _world_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    sequences = world_sequences(Path(data.root), split)
    if "sequences" in data.options:
        sequences = [s for s in sequences if s.folder.name in set(data.options["sequences"])]
    wanted = list(data.train_conditions if train else data.eval_conditions)
    items: list[FrameItem] = []
    for seq in sequences:
        conditions = wanted or seq.conditions
        missing = [c for c in conditions if c not in seq.conditions]
        if missing:
            raise DataError(f"world sequence {seq.folder} has no condition(s) {missing}; rendered: {seq.conditions}")
        items += items_with_neighbours([seq], frame_ids, conditions)
    return items


def augment_settings(augment: Any) -> AugmentSettings:
    return AugmentSettings(**{k: float(augment[k]) for k in AugmentSettings.__dataclass_fields__})


def build_items(cfg: Any, split: str, train: bool) -> list[FrameItem]:
    name = cfg.data.dataset
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    builder, valid = DATASETS[name]
    check_options(name, dict(cfg.data.options), valid)
    frame_ids = list(cfg.data.frame_ids) if train else [0]
    return builder(cfg.data, split, train, frame_ids)


def build_dataset(cfg: Any, split: str, train: bool) -> FrameDataset:
    """The training (augmented, with source frames) or evaluation (target + GT) dataset of a split."""
    items = build_items(cfg, split, train)
    hooks = [h for h in (factory(cfg, split, train) for factory in ordered_hook_factories()) if h is not None]
    return FrameDataset(
        items,
        height=cfg.data.height,
        width=cfg.data.width,
        frame_ids=list(cfg.data.frame_ids) if train else [0],
        augment=augment_settings(cfg.augment) if train else None,
        seed=cfg.train.seed,
        load_depth_gt=(not train) or cfg.data.load_depth_gt,
        hooks=hooks,
    )


# The datasets beyond the two built in above; each registers itself (sample hooks of the layers above this one
# are listed in robustdepth.configure).
from robustdepth.data import drives, drivingstereo, kitti, kitti_odometry, nuscenes, robotcar  # noqa: E402, F401, I001

__all__ = [
    "DATASETS",
    "HOOK_ANNOTATIONS",
    "HOOK_NORMALISE",
    "HOOK_VIEWS",
    "SAMPLE_HOOKS",
    "AugmentSettings",
    "DataError",
    "FrameDataset",
    "FrameItem",
    "FrameSequence",
    "SampleHook",
    "WorldSequence",
    "build_dataset",
    "build_items",
    "color_key",
    "ordered_hook_factories",
    "items_with_neighbours",
    "read_depth",
    "read_rgb",
    "register_dataset",
    "register_sample_hook",
    "translation_key",
]
