"""Generator presets: how many sequences, how long, at which stored resolution.

A preset fixes everything but the seed, so ``(preset, seed)`` names a data set exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CONDITIONS: tuple[str, ...] = ("clear", "night", "rain", "fog", "snow")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    """Sequences of one split: count, frames each, and the conditions rendered for each."""

    sequences: int
    frames: int
    conditions: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    """A named generator configuration.

    ``height``/``width`` are the STORED resolution (the intrinsics in ``intrinsics.txt`` refer to it);
    ``supersample`` renders each stored pixel from ss×ss samples (anti-aliasing) while depth and ids come
    from the exact pixel centre. ``stop_probability`` is the chance that a sequence holds an ego-static
    stretch (the car waits, e.g. at a crossing).
    """

    name: str
    height: int
    width: int
    splits: dict[str, SplitSpec] = field(default_factory=dict)
    supersample: int = 1
    stop_probability: float = 0.3

    def to_json(self) -> dict:
        """Plain dict for world.json (tuples become lists)."""
        out = asdict(self)
        out["splits"] = {k: {**asdict(v), "conditions": list(v.conditions)} for k, v in self.splits.items()}
        return out

    @property
    def total_renders(self) -> int:
        """Frames × conditions over all splits (what the progress bar counts)."""
        return sum(s.sequences * s.frames * len(s.conditions) for s in self.splits.values())


def _preset(name: str, hw: tuple[int, int], train: tuple[int, int], val: tuple[int, int],
            test: tuple[int, int], supersample: int = 1) -> Preset:
    return Preset(
        name=name, height=hw[0], width=hw[1], supersample=supersample,
        splits={
            "train": SplitSpec(train[0], train[1], ("clear",)),
            "val": SplitSpec(val[0], val[1], CONDITIONS),
            "test": SplitSpec(test[0], test[1], CONDITIONS),
        },
    )


#: ``tiny``: unit tests (seconds). ``small``: ``make demo`` (about a minute on 2 cores); stored at 96×320
#: so training runs at 96×320 directly or resizes to 64×192. ``default``: benchmarks, 4000 training frames
#: at KITTI's 192×640.
PRESETS: dict[str, Preset] = {
    "tiny": _preset("tiny", (64, 192), train=(2, 12), val=(1, 6), test=(1, 6)),
    "small": _preset("small", (96, 320), train=(10, 80), val=(2, 12), test=(3, 20)),
    "default": _preset("default", (192, 640), train=(40, 100), val=(4, 40), test=(10, 50)),
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name; unknown names raise with the list of known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown world preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
