"""The dataset interface: sequences of frames → one training/evaluation sample dict.

Every dataset (the embedded world, a generic folder, KITTI, nuScenes, …) only describes its
*sequences* (where frames are, intrinsics, optional GT depth and poses) and which *items*
(sequence, frame index, condition) a split holds. :class:`FrameDataset` turns items into samples,
so loading, resizing, flipping and jitter behave identically for all of them.

Sample keys (collated into the batch dict the trainer and losses read):

========================  =====================================================================
``("color", f)``          frame ``f`` (0 = target, −1/+1 = sources), 3×H×W in [0, 1], un-jittered
``("color_aug", f)``      the same frame with this sample's colour jitter / noise (network input)
``"K"``                   3×3 intrinsics in pixels at the training resolution
``"condition"``           condition label (clear, night, rain, fog, snow, …)
``"index"``, ``"flipped"``  item index in the split, whether the sample was mirrored
``"depth_gt"``            1×Hg×Wg metres at the native resolution, 0 = invalid (when loaded)
``("translation_norm", f)``  |t| between target and source ``f`` in metres (velocity loss), when known
slots filled by hooks     e.g. ``"degraded"``/``"degraded_aug"``/``"is_degraded"`` (degradation
                          supply), ``"masks"`` (object masks), ``"depth_prior"``
========================  =====================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from robustdepth.data.augment import add_noise, apply_jitter, sample_jitter


class DataError(ValueError):
    """A dataset on disk that cannot be read as configured (the message names the file)."""


def read_rgb(path: Path) -> Image.Image:
    """Open an image as RGB, with errors that name the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None


def read_depth(path: Path) -> np.ndarray:
    """GT depth in metres: float ``.npy`` or 16-bit PNG storing depth × 256 (KITTI convention)."""
    if not path.is_file():
        raise DataError(f"depth file not found: {path}")
    try:
        if path.suffix == ".npy":
            depth = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            with Image.open(path) as img:
                depth = np.asarray(img, dtype=np.float32) / 256.0
    except (ValueError, OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read depth {path}: {err}") from None
    if depth.ndim != 2:
        raise DataError(f"depth {path} must be H×W, got shape {depth.shape}")
    return depth


def parse_intrinsics(value: Any, source: str) -> np.ndarray:
    """A 3×3 K in pixels from [fx, fy, cx, cy], 9 numbers, or a text file holding either."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise DataError(f"intrinsics file not found: {path} ({source})")
        try:
            value = np.loadtxt(path, dtype=np.float64).reshape(-1).tolist()
        except ValueError as err:
            raise DataError(f"intrinsics file {path} is not numeric: {err}") from None
    arr = np.asarray(list(value), dtype=np.float64).reshape(-1)
    if arr.size == 4:
        fx, fy, cx, cy = arr
        arr = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64)
    if arr.size not in (9, 12, 16):
        raise DataError(f"intrinsics from {source}: need [fx, fy, cx, cy] or a 3×3 matrix, got {arr.size} numbers")
    side = {9: 3, 12: 3, 16: 4}[arr.size]
    K = arr.reshape(side, -1)[:3, :3]
    if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-6 or K[1, 0] or K[2, 0] or K[2, 1]:
        raise DataError(f"intrinsics from {source} do not look like a pinhole K in pixels:\n{K}")
    return K.astype(np.float32)


class FrameSequence(ABC):
    """An ordered sequence of frames from one camera (per condition, when a dataset has several)."""

    name: str

    @property
    @abstractmethod
    def num_frames(self) -> int: ...

    @abstractmethod
    def image_path(self, index: int, condition: str) -> Path: ...

    @abstractmethod
    def intrinsics(self) -> np.ndarray:
        """3×3 K in pixels at the stored (native) resolution."""

    def load_image(self, index: int, condition: str) -> Image.Image:
        return read_rgb(self.image_path(index, condition))

    def depth_gt(self, index: int, condition: str) -> np.ndarray | None:
        """GT depth (metres, 0 = invalid) at the native resolution, or None when the dataset has none."""
        return None

    def pose(self, index: int) -> np.ndarray | None:
        """4×4 camera-to-world pose, or None when unknown."""
        return None


@dataclass(frozen=True)
class FrameItem:
    """One training/evaluation sample: a target frame of a sequence in a condition."""

    sequence: FrameSequence
    index: int
    condition: str = "clear"
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class SampleHook(Protocol):
    """Fills extra slots of a sample (degraded copy, masks, priors) consistently with its augmentation.

    ``augment`` applies this sample's colour jitter / noise draw to another image of the sample (e.g.
    the degraded copy), so network inputs derived from one frame share one augmentation.
    """

    def __call__(self, item: FrameItem, sample: dict[Any, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None: ...


@dataclass(frozen=True)
class AugmentSettings:
    """The subset of AugmentConfig a dataset needs (plain values: picklable for workers)."""

    color_jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    flip_p: float = 0.0
    noise_p: float = 0.0
    noise_mean: float = 0.0
    noise_std: float = 0.0


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed per-sample seed: augmentation depends only on (seed, epoch, index)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def items_with_neighbours(sequences: Sequence[FrameSequence], frame_ids: Sequence[int],
                          conditions: Sequence[str]) -> list[FrameItem]:
    """Every frame whose source frames (``frame_ids``) exist in its sequence, per condition."""
    lo, hi = min(frame_ids), max(frame_ids)
    return [FrameItem(seq, i, cond) for cond in conditions for seq in sequences
            for i in range(-lo, seq.num_frames - hi)]


CachedFrame = tuple[np.ndarray, tuple[int, int]]  # (H×W×3 uint8 at training size, native (H, W))


class FrameCache:
    """Resized uint8 frames kept in memory up to a byte budget (first come, first kept).

    Decoding and Lanczos-resizing three frames per sample is most of a loader worker's work; with
    the cache each frame is done once per worker process, and the uint8 array it stores is exactly
    what the uncached path converts, so samples stay byte-identical. Once full it simply stops
    adding (no eviction churn: a random-order epoch would evict what it needs next anyway).
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"frame cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self.used_bytes = 0
        self._store: dict[Any, CachedFrame] = {}

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: Any, load: Callable[[], CachedFrame]) -> CachedFrame:
        """The cached value of ``key``, else ``load()`` (stored while the budget allows)."""
        hit = self._store.get(key)
        if hit is not None:
            return hit
        value = load()
        if self.used_bytes + value[0].nbytes <= self.budget_bytes:
            value[0].setflags(write=False)  # shared across samples: never modified in place
            self._store[key] = value
            self.used_bytes += value[0].nbytes
        return value


class FrameDataset(Dataset):
    """Turns :class:`FrameItem` s into sample dicts at a fixed training resolution.

    Indices may be *encoded* as ``epoch * len(self) + item`` (see ``training.sampler``) so that
    augmentation is a pure function of (seed, epoch, item): resumed runs and any number of
    loader workers reproduce the same samples.
    """

    def __init__(self, items: list[FrameItem], height: int, width: int, frame_ids: Sequence[int],
                 augment: AugmentSettings | None = None, seed: int = 0, load_depth_gt: bool = False,
                 hooks: Sequence[SampleHook] = ()) -> None:
        if not items:
            raise DataError("dataset has no samples (check data.root, the split and the conditions)")
        self.items = items
        self.height, self.width = height, width
        self.frame_ids = list(frame_ids)
        self.augment = augment or AugmentSettings()
        self.seed = seed
        self.load_depth_gt = load_depth_gt
        self.hooks = list(hooks)
        self.frame_cache = FrameCache(0)  # off unless the trainer sets a budget (data.cache_frames_mb)

    def __len__(self) -> int:
        return len(self.items)

    def conditions(self) -> list[str]:
        return sorted({item.condition for item in self.items})

    def _resized_frame(self, item: FrameItem, index: int) -> CachedFrame:
        """Frame ``index`` as H×W×3 uint8 at the training resolution, and its native (H, W)."""
        img = item.sequence.load_image(index, item.condition)
        native_hw = (img.height, img.width)
        if img.size != (self.width, self.height):
            img = img.resize((self.width, self.height), Image.Resampling.LANCZOS)  # Monodepth2's antialias
        return np.asarray(img), native_hw

    def _frame_tensor(self, item: FrameItem, index: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """Frame ``index`` resized to the training resolution (cached when enabled), and its native (H, W)."""
        if self.frame_cache.budget_bytes > 0:
            key = (str(item.sequence.image_path(index, item.condition)), self.height, self.width)
            rgb, native_hw = self.frame_cache.get(key, lambda: self._resized_frame(item, index))
        else:
            rgb, native_hw = self._resized_frame(item, index)
        tensor = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        return tensor, native_hw

    def _intrinsics(self, item: FrameItem, native_hw: tuple[int, int]) -> torch.Tensor:
        K = item.sequence.intrinsics().astype(np.float64).copy()
        K[0] *= self.width / native_hw[1]
        K[1] *= self.height / native_hw[0]
        return torch.from_numpy(K.astype(np.float32))

    def _translation_norms(self, item: FrameItem) -> dict[Any, torch.Tensor]:
        target = item.sequence.pose(item.index)
        if target is None:
            return {}
        out = {}
        for f in self.frame_ids[1:]:
            source = item.sequence.pose(item.index + f)
            if source is not None:
                out[("translation_norm", f)] = torch.tensor(
                    float(np.linalg.norm(source[:3, 3] - target[:3, 3])), dtype=torch.float32)
        return out

    def __getitem__(self, encoded: int) -> dict[Any, Any]:
        epoch, idx = divmod(int(encoded), len(self.items))
        item = self.items[idx]
        gen = torch.Generator().manual_seed(sample_seed(self.seed, epoch, idx))
        aug = self.augment
        flipped = bool(torch.rand((), generator=gen) < aug.flip_p)
        jitter = sample_jitter(gen, aug.brightness, aug.contrast, aug.saturation, aug.hue) \
            if torch.rand((), generator=gen) < aug.color_jitter_p else None
        noisy = bool(torch.rand((), generator=gen) < aug.noise_p)

        sample: dict[Any, Any] = {"index": idx, "condition": item.condition, "flipped": flipped}
        native_hw = (self.height, self.width)
        for f in self.frame_ids:
            frame, hw = self._frame_tensor(item, item.index + f)
            if f == 0:
                native_hw = hw
            if flipped:
                frame = frame.flip(-1)
            sample[("color", f)] = frame
            sample[("color_aug", f)] = self.jitter_and_noise(frame, jitter, noisy, gen)
        sample["K"] = self._intrinsics(item, native_hw)
        sample.update(self._translation_norms(item))
        if self.load_depth_gt:
            sample["depth_gt"] = self._depth_gt(item, flipped)
        for hook in self.hooks:
            hook(item, sample, gen, flipped, lambda img: self.jitter_and_noise(img, jitter, noisy, gen))
        return sample

    def jitter_and_noise(self, frame: torch.Tensor, jitter: Any, noisy: bool, gen: torch.Generator) -> torch.Tensor:
        """The network-input version of a frame (also used by hooks for degraded copies)."""
        out = apply_jitter(frame, jitter) if jitter is not None else frame
        if noisy:
            out = add_noise(out, gen, self.augment.noise_mean, self.augment.noise_std)
        return out

    def _depth_gt(self, item: FrameItem, flipped: bool) -> torch.Tensor:
        depth = item.sequence.depth_gt(item.index, item.condition)
        if depth is None:
            raise DataError(f"sequence {item.sequence.name} has no GT depth for frame {item.index}")
        tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)).unsqueeze(0)
        return tensor.flip(-1) if flipped else tensor

