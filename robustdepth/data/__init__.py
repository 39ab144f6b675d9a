"""Datasets: registered item builders + one :class:`FrameDataset` that makes every sample.

A dataset registers a function ``(data_cfg, split, train, frame_ids) -> list[FrameItem]`` with the
option keys it accepts (``data.options``). Features that add batch slots (degraded copies, object
masks, priors) register a *sample hook factory* ``(cfg, split, train) -> SampleHook | None``.
"""

from __future__ import annotations

import importlib
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
    items_with_neighbours,
    read_depth,
    read_rgb,
)
from robustdepth.data.folder import folder_sequences
from robustdepth.data.world import WorldSequence, world_sequences

ItemBuilder = Callable[[Any, str, bool, Sequence[int]], list[FrameItem]]
HookFactory = Callable[[Any, str, bool], "SampleHook | None"]

DATASETS: dict[str, tuple[ItemBuilder, frozenset[str]]] = {}
SAMPLE_HOOKS: list[HookFactory] = []
HOOK_STAGE: dict[HookFactory, int] = {}
# Modules that register datasets / sample hooks (imported on first use: they depend on this package).
DATASET_MODULES: tuple[str, ...] = (
    "robustdepth.data.kitti",
    "robustdepth.data.nuscenes",
    "robustdepth.data.robotcar",
    "robustdepth.data.drivingstereo",
    "robustdepth.data.kitti_odometry",
    "robustdepth.data.drives",
)
HOOK_MODULES: tuple[str, ...] = ("robustdepth.degrade.supply", "robustdepth.priors.masks")


def load_registered_modules() -> None:
    for module in (*DATASET_MODULES, *HOOK_MODULES):
        importlib.import_module(module)


def register_dataset(name: str, options: Sequence[str] = ()) -> Callable[[ItemBuilder], ItemBuilder]:
    """Register an item builder under ``data.dataset=name``; ``options`` are its valid ``data.options`` keys."""
    def wrap(fn: ItemBuilder) -> ItemBuilder:
        DATASETS[name] = (fn, frozenset(options))
        return fn
    return wrap


#: Hook stages, applied in this order whatever the import order of the modules that register them:
HOOK_VIEWS = 0  # add or replace image views (the degradation supply, WeatherKITTI's copies)
HOOK_ANNOTATIONS = 1  # per-frame annotations of the views (object masks)
HOOK_NORMALISE = 2  # input normalisation of every view that exists (md4all's daytime normalisation)


def register_sample_hook(factory: HookFactory | None = None, *, stage: int = HOOK_VIEWS) -> Any:
    """Register a sample-hook factory, as ``@register_sample_hook`` or ``@register_sample_hook(stage=...)``;
    hooks run by ``stage`` (:data:`HOOK_VIEWS` < :data:`HOOK_ANNOTATIONS` < :data:`HOOK_NORMALISE`), then in
    registration order."""
    def add(fn: HookFactory) -> HookFactory:
        SAMPLE_HOOKS.append(fn)
        HOOK_STAGE[fn] = stage
        return fn

    return add(factory) if factory is not None else add


def _check_options(name: str, options: dict[str, Any], valid: frozenset[str]) -> None:
    unknown = sorted(set(options) - valid)
    if unknown:
        raise DataError(f"data.options {unknown} not understood by dataset {name!r}; valid: {sorted(valid) or 'none'}")


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


def ordered_hook_factories() -> list[HookFactory]:
    """The registered sample-hook factories in the order their hooks run: by stage, then registration order."""
    return sorted(SAMPLE_HOOKS, key=lambda f: HOOK_STAGE.get(f, HOOK_VIEWS))


def augment_settings(augment: Any) -> AugmentSettings:
    return AugmentSettings(**{k: float(augment[k]) for k in AugmentSettings.__dataclass_fields__})


def build_items(cfg: Any, split: str, train: bool) -> list[FrameItem]:
    load_registered_modules()
    name = cfg.data.dataset
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    builder, valid = DATASETS[name]
    _check_options(name, dict(cfg.data.options), valid)
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
    "ordered_hook_factories",
    "items_with_neighbours",
    "read_depth",
    "read_rgb",
    "register_dataset",
    "register_sample_hook",
]
