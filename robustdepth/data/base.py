"""The dataset interface: sequences of frames → one training/evaluation sample dict.

Every dataset (the embedded world, a generic folder, KITTI, nuScenes, …) only describes its
*sequences* (where frames are, intrinsics, optional GT depth and poses) and which *items*
(sequence, frame index, condition) a split holds. :class:`FrameDataset` turns items into samples,
so loading, resizing, flipping and jitter behave identically for all of them.

Sample keys (collated into the batch dict the trainer and losses read). Every key is a string; a per-frame
slot is ``"<slot>:<frame>"`` (:data:`KEY_SEPARATOR`), built with :func:`color_key` / :func:`translation_key`,
never spelled by hand:

============================  =================================================================================
``"color:<f>"``               frame ``f`` (``color_key(f)``; 0 = target, −1/+1 = sources, ``s`` = KITTI's other
                              stereo camera), 3×H×W in [0, 1], un-jittered
``"color_aug:<f>"``           the same frame with this sample's colour jitter / noise (``color_key(f, aug=True)``,
                              network input)
``"K"``                       3×3 intrinsics in pixels at the training resolution
``"condition"``               condition label (clear, night, rain, fog, snow, …)
``"index"``, ``"flipped"``    item index in the split, whether the sample was mirrored
``"depth_gt"``                1×Hg×Wg metres at the native resolution, 0 = invalid (when loaded)
``"translation_norm:<f>"``    |t| between target and source ``f`` in metres (``translation_key(f)``, velocity
                              loss), when known
slots filled by hooks         e.g. ``"degraded"``/``"degraded_aug"``/``"is_degraded"``/``"degraded_condition"``
                              (degradation supply), ``"stereo_T"`` (KITTI stereo), ``"clean_input"``/
                              ``"degraded_input"`` (daytime normalisation), ``"masks"`` (object masks)
============================  =================================================================================
"""

from __future__ import annotations

import numbers
import warnings
import zipfile
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


#: Separates a per-frame slot's name from its frame in a batch key (``"color:-1"``): not a character of any
#: slot name, and a plain string, so keys survive torch's default collate and compare by value in ``dict`` lookups.
KEY_SEPARATOR = ":"
#: Slot names of the per-frame keys (see the module docstring).
COLOR, COLOR_AUG, TRANSLATION_NORM = "color", "color_aug", "translation_norm"


def frame_key(slot: str, frame: int | str) -> str:
    """The batch key of per-frame ``slot`` for ``frame``: ``frame_key(COLOR, -1) == "color:-1"``.

    ``frame`` is an integer offset (NumPy integers included) or a named slot such as ``"s"``; anything else
    (a float ``1.0``, a bool) is refused rather than spelled into a key no one reads.
    """
    if isinstance(frame, bool) or not isinstance(frame, (numbers.Integral, str)):
        raise TypeError(f"a frame of a batch key is an int offset or a slot name such as 's', got {frame!r}")
    return f"{slot}{KEY_SEPARATOR}{frame if isinstance(frame, str) else int(frame)}"


def color_key(frame: int | str, aug: bool = False) -> str:
    """The batch key of frame ``frame`` (0 = target, −1/+1 = sources, ``"s"`` = KITTI's stereo slot):
    ``"color:0"``, ``"color:-1"``, ``"color:s"``; with ``aug`` its jittered copy, ``"color_aug:1"``."""
    return frame_key(COLOR_AUG if aug else COLOR, frame)


def translation_key(frame: int) -> str:
    """The batch key of |t| between the target and source ``frame`` in metres: ``"translation_norm:-1"``."""
    return frame_key(TRANSLATION_NORM, frame)


def key_slot(key: str) -> str:
    """The slot name of a batch key: ``"color_aug"`` for ``"color_aug:-1"``, the key itself for ``"K"``."""
    return key.partition(KEY_SEPARATOR)[0]


class DataError(ValueError):
    """A dataset on disk that cannot be read as configured (the message names the file)."""


#: Full-scale value of each single-channel high-bit-depth PIL mode (PIL's own ``convert("RGB")`` clips
#: these at 255, turning a 16-bit grayscale frame almost white).
_HIGH_BIT_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: 16-bit grayscale scaled by its full scale (65535 → 255), 32-bit
    integer (``I``) by 65535 when it exceeds 255 (16-bit data PIL widened), float (``F``) taken as [0, 1]
    when its maximum is ≤ 1, else [0, 255]; grayscale replicated to three channels; alpha dropped."""
    if img.mode == "RGB":
        return img
    if img.mode in _HIGH_BIT_MODES or img.mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64)
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if finite.size else 0.0
        if img.mode in _HIGH_BIT_MODES:
            full_scale = _HIGH_BIT_MODES[img.mode]
        elif img.mode == "I":
            full_scale = 65535.0 if peak > 255 else 255.0
        else:
            full_scale = 1.0 if peak <= 1.0 else 255.0
        gray = np.clip(np.nan_to_num(values / full_scale * 255.0, nan=0.0), 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")
    return img.convert("RGB")


def read_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB (see :func:`to_rgb`), with errors that name the file.

    Images above PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused as data
    errors, not read.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except Image.DecompressionBombError as err:
        raise DataError(f"refusing image {path}: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, EOFError) as err:
        raise DataError(f"cannot read image {path}: {' '.join(str(err).split())}") from None


def unwrap_worker_error(err: BaseException) -> BaseException:
    """The error a DataLoader worker raised, with its own one-line message.

    PyTorch re-raises a worker's exception in the main process as the same type whose message is
    "Caught X in DataLoader worker process N. Original Traceback ..." (the whole worker traceback as
    text). This returns an exception of that type holding only the original message (its last
    traceback line, without the ``module.Type:`` prefix); anything else is returned unchanged.
    """
    text = str(err)
    if "Original Traceback" not in text:
        return err
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    name = type(err).__name__
    head, sep, message = last.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == name:
        last = message
    try:
        return type(err)(last.strip())
    except Exception:  # a type that does not take one message argument: keep the original
        return err


def read_depth(path: Path) -> np.ndarray:
    """GT depth in metres: float ``.npy`` or 16-bit PNG storing depth × 256 (KITTI convention)."""
    if not path.is_file():
        raise DataError(f"depth file not found: {path}")
    try:
        depth = _load_npy_depth(path) if path.suffix == ".npy" else _load_png_depth(path)
    except (ValueError, OSError, UnidentifiedImageError, TypeError, EOFError, SyntaxError, zipfile.BadZipFile,
            Image.DecompressionBombError) as err:
        raise DataError(f"cannot read depth {path}: {' '.join(str(err).split())}") from None
    if depth.ndim != 2 or 0 in depth.shape:
        raise DataError(f"depth {path} must be a non-empty H×W map, got shape {depth.shape}")
    return depth


def _load_npy_depth(path: Path) -> np.ndarray:
    """A real-valued ``.npy`` array as float32 (an ``.npz`` archive or a complex array is refused)."""
    with open(path, "rb") as fh:  # our handle: closed even when numpy fails half-way through a bad file
        loaded = np.load(fh, allow_pickle=False)
        if not isinstance(loaded, np.ndarray):
            raise ValueError("it is an .npz archive, not a single .npy array")
    if not (np.issubdtype(loaded.dtype, np.floating) or np.issubdtype(loaded.dtype, np.integer)
            or loaded.dtype == np.bool_):
        raise ValueError(f"dtype {loaded.dtype} is not a real number type")
    return loaded.astype(np.float32)


def _load_png_depth(path: Path) -> np.ndarray:
    """A 16-bit PNG (or any single-channel image) storing depth × 256 (KITTI convention), in metres."""
    with Image.open(path) as img:
        if img.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "F"):
            raise ValueError(f"depth images must be single-channel (16-bit PNG = metres × 256), got mode {img.mode}")
        return np.asarray(img, dtype=np.float32) / 256.0


def parse_intrinsics(value: Any, source: str) -> np.ndarray:
    """A 3×3 K in pixels from [fx, fy, cx, cy], 9 numbers, or a text file holding either."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise DataError(f"intrinsics file not found: {path} ({source})")
        source = f"{path} ({source})"
        try:
            with warnings.catch_warnings():  # an empty file warns, then is refused below as 0 numbers
                warnings.simplefilter("ignore", UserWarning)
                value = np.loadtxt(path, dtype=np.float64, ndmin=1).reshape(-1).tolist()
        except (ValueError, UnicodeDecodeError, OSError, IndexError) as err:
            raise DataError(f"intrinsics file {path} is not numeric: {' '.join(str(err).split())}") from None
    try:
        arr = np.asarray(list(value), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"intrinsics from {source}: need numbers [fx, fy, cx, cy] or a 3×3 matrix ({err})") from None
    if arr.size == 4:
        fx, fy, cx, cy = arr
        arr = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64)
    if arr.size not in (9, 12, 16):
        raise DataError(f"intrinsics from {source}: need [fx, fy, cx, cy] or a 3×3 matrix, got {arr.size} numbers")
    side = {9: 3, 12: 3, 16: 4}[arr.size]
    K = arr.reshape(side, -1)[:3, :3]
    flat = " ".join(f"{v:g}" for v in K.reshape(-1))
    if not np.isfinite(K).all():
        raise DataError(f"intrinsics from {source} are not finite: K = [{flat}]")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"intrinsics from {source}: focal lengths must be > 0, got fx={K[0, 0]:g} fy={K[1, 1]:g}")
    if abs(K[2, 2] - 1) > 1e-6 or K[1, 0] or K[2, 0] or K[2, 1]:
        raise DataError(f"intrinsics from {source} do not look like a pinhole K in pixels: K = [{flat}]")
    if max(abs(K[0, 0]), abs(K[1, 1]), abs(K[0, 2]), abs(K[1, 2]), abs(K[0, 1])) > MAX_INTRINSIC_PIXELS:
        raise DataError(f"intrinsics from {source}: values beyond {MAX_INTRINSIC_PIXELS:g} pixels "
                        f"(K = [{flat}]) are not a camera")
    return K.astype(np.float32)


#: Largest focal length / principal point accepted anywhere (float32 keeps integers exact below 2^24).
MAX_INTRINSIC_PIXELS = 1e6
#: How far outside the image the principal point may lie, as a fraction of the image size (crops and
#: off-centre sensors move it, but not beyond the frame's edge by more than this).
PRINCIPAL_POINT_MARGIN = 0.5


def check_principal_point(K: np.ndarray, height: int, width: int, source: str) -> None:
    """Refuse a principal point farther than :data:`PRINCIPAL_POINT_MARGIN` image sizes outside the image
    (e.g. K for another resolution, or a typo): warps with it would sample nothing useful."""
    cx, cy = float(K[0, 2]), float(K[1, 2])
    m = PRINCIPAL_POINT_MARGIN
    if not (-m * width <= cx <= (1 + m) * width and -m * height <= cy <= (1 + m) * height):
        raise DataError(f"intrinsics of {source}: principal point (cx={cx:g}, cy={cy:g}) is far outside the "
                        f"{width}×{height} image; is K for another resolution?")


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

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
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
        self._check_cameras()

    def _check_cameras(self) -> None:
        """Each sequence's K against its first frame's size (the image header only), before any run starts:
        a principal point far outside the image fails here, not in a loader worker mid-run."""
        seen: set[int] = set()
        for item in self.items:
            if id(item.sequence) in seen:
                continue
            seen.add(id(item.sequence))
            path = item.sequence.image_path(item.index, item.condition)
            try:
                with Image.open(path) as img:
                    width, height = img.size
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                continue  # unreadable frames are reported (with their name) when they are loaded
            check_principal_point(item.sequence.intrinsics(), height, width, f"sequence {item.sequence.name}")

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
        check_principal_point(K, native_hw[0], native_hw[1], f"sequence {item.sequence.name}")
        K[0] *= self.width / native_hw[1]
        K[1] *= self.height / native_hw[0]
        return torch.from_numpy(K.astype(np.float32))

    def _translation_norms(self, item: FrameItem) -> dict[str, torch.Tensor]:
        target = item.sequence.pose(item.index)
        if target is None:
            return {}
        out = {}
        for f in self.frame_ids[1:]:
            source = item.sequence.pose(item.index + f)
            if source is not None:
                out[translation_key(f)] = torch.tensor(
                    float(np.linalg.norm(source[:3, 3] - target[:3, 3])), dtype=torch.float32)
        return out

    def __getitem__(self, encoded: int) -> dict[str, Any]:
        epoch, idx = divmod(int(encoded), len(self.items))
        item = self.items[idx]
        gen = torch.Generator().manual_seed(sample_seed(self.seed, epoch, idx))
        aug = self.augment
        flipped = bool(torch.rand((), generator=gen) < aug.flip_p)
        jitter = sample_jitter(gen, aug.brightness, aug.contrast, aug.saturation, aug.hue) \
            if torch.rand((), generator=gen) < aug.color_jitter_p else None
        noisy = bool(torch.rand((), generator=gen) < aug.noise_p)

        sample: dict[str, Any] = {"index": idx, "condition": item.condition, "flipped": flipped}
        native_hw = (self.height, self.width)
        for f in self.frame_ids:
            frame, hw = self._frame_tensor(item, item.index + f)
            if f == 0:
                native_hw = hw
            if flipped:
                frame = frame.flip(-1)
            sample[color_key(f)] = frame
            sample[color_key(f, aug=True)] = self.jitter_and_noise(frame, jitter, noisy, gen)
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

