"""The dataset and sample-hook registries: what ``data.dataset=NAME`` and the batch's extra slots resolve to.

A dataset registers a function ``(data_cfg, split, train, frame_ids) -> list[FrameItem]`` with the option keys
it accepts (``data.options``); a feature that adds batch slots (degraded copies, object masks, input
normalisation) registers a *sample hook factory* ``(cfg, split, train) -> SampleHook | None`` at a stage.
Which modules register into them is listed in one place each: the datasets in ``robustdepth/data/__init__.py``
(same layer, imported there), the sample hooks of the layers above in :mod:`robustdepth.configure` (every
config a dataset is built from was made there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from robustdepth.data.base import DataError, FrameItem, SampleHook

ItemBuilder = Callable[[Any, str, bool, Sequence[int]], list[FrameItem]]
HookFactory = Callable[[Any, str, bool], "SampleHook | None"]

DATASETS: dict[str, tuple[ItemBuilder, frozenset[str]]] = {}
SAMPLE_HOOKS: list[HookFactory] = []
HOOK_STAGE: dict[HookFactory, int] = {}


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


def check_options(name: str, options: dict[str, Any], valid: frozenset[str]) -> None:
    """A dataset's ``data.options`` keys must be among its registered ones (one DataError naming the others)."""
    unknown = sorted(set(options) - valid)
    if unknown:
        raise DataError(f"data.options {unknown} not understood by dataset {name!r}; valid: {sorted(valid) or 'none'}")


def ordered_hook_factories() -> list[HookFactory]:
    """The registered sample-hook factories in the order their hooks run: by stage, then registration order."""
    return sorted(SAMPLE_HOOKS, key=lambda f: HOOK_STAGE.get(f, HOOK_VIEWS))


__all__ = ["DATASETS", "HOOK_ANNOTATIONS", "HOOK_NORMALISE", "HOOK_STAGE", "HOOK_VIEWS", "SAMPLE_HOOKS", "HookFactory",
           "ItemBuilder", "check_options", "ordered_hook_factories", "register_dataset", "register_sample_hook"]
