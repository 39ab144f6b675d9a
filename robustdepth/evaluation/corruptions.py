"""The 18 image corruptions of the RoboDepth KITTI-C benchmark, at severities 1-5.

RoboDepth (Kong et al., NeurIPS 2023 D&B; github.com/ldkong1205/RoboDepth, ``corruptions/utils.py`` and
``docs/CREATE.md``) builds KITTI-C by resizing each Eigen test image to 640x192 (PIL ANTIALIAS/LANCZOS)
and applying:

* 15 corruptions taken unchanged from the ``imagecorruptions`` package (bethgelab, v1.1.2, the
  ImageNet-C definitions with the non-square fixes for fog/frost): brightness, fog, frost, snow,
  contrast, defocus_blur, glass_blur, motion_blur, zoom_blur, elastic_transform, gaussian_noise,
  impulse_noise, shot_noise, pixelate, jpeg_compression. They run here through that package, made
  to work on numpy 2 / scikit-image >= 0.19 / setuptools >= 81 by the small compatibility layer
  below (nothing of their maths is re-implemented).
* 3 corruptions RoboDepth defines itself, re-written here from its definition: ``dark``
  (gamma-2 contrast compression to a peak of 0.6 ... 0.2 plus Poisson-Gaussian sensor noise),
  ``iso_noise`` (Poisson noise with 25 photons plus Gaussian noise of 0.7 x the gaussian_noise
  scale), ``color_quant`` (PIL posterize to 5 ... 1 bits).

All corruptions draw from numpy's legacy global RNG, as the originals do; ``corrupt(..., seed=s)``
seeds that RNG for the one call and restores its previous state afterwards, so a seeded call is
deterministic and leaves the caller's random stream untouched (not thread-safe while it runs).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

CORRUPTIONS: tuple[str, ...] = (
    "brightness",
    "dark",
    "fog",
    "frost",
    "snow",
    "contrast",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "elastic_transform",
    "color_quant",
    "gaussian_noise",
    "impulse_noise",
    "shot_noise",
    "iso_noise",
    "pixelate",
    "jpeg_compression",
)
"""RoboDepth's 18 corruption names, in RoboDepth's order (weather & lighting, sensor & movement,
data & processing)."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

KITTI_C_SIZE: tuple[int, int] = (192, 640)
"""(height, width) at which RoboDepth corrupts KITTI frames."""

MIN_SIDE = 32
"""imagecorruptions refuses images with a side under 32 px; the same limit applies to every name here."""

# RoboDepth's own corruptions (not in imagecorruptions); every other name comes straight from that package.
ROBODEPTH_CORRUPTIONS: frozenset[str] = frozenset({"dark", "color_quant", "iso_noise"})
LIBRARY_CORRUPTIONS: frozenset[str] = frozenset(CORRUPTIONS) - ROBODEPTH_CORRUPTIONS

# Severity parameters of RoboDepth's own corruptions (docs/CREATE.md "Configuration Details").
DARK_PEAK = (0.60, 0.50, 0.40, 0.30, 0.20)  # output value of the brightest input pixel (of 1)
DARK_GAMMA = 2.0
DARK_PHOTONS = (600, 250, 120, 50, 30)  # 10 x shot_noise's photon counts
DARK_GAUSS_STD = (0.008, 0.012, 0.018, 0.026, 0.038)  # 0.1 x gaussian_noise's scales
ISO_PHOTONS = 25
ISO_GAUSS_STD = (0.056, 0.084, 0.126, 0.182, 0.266)  # 0.7 x gaussian_noise's scales
COLOR_QUANT_BITS = (5, 4, 3, 2, 1)

_INSTALL_HINT = (
    "the 'imagecorruptions' package is needed for the RoboDepth corruptions; install it with "
    "`.venv/bin/pip install -c constraints.txt --no-deps imagecorruptions` (--no-deps: its metadata "
    "would pull opencv-python over opencv-python-headless)"
)


# ----------------------------------------------------------------------------------------------------
# Compatibility layer for imagecorruptions 1.1.2 (written for numpy 1.x / scikit-image < 0.19).
# Every patch replaces a *module global of imagecorruptions.corruptions* only, so numpy, scikit-image
# and sys.modules stay untouched for everybody else.
# ----------------------------------------------------------------------------------------------------


class _NumpyWithRemovedAliases:
    """Stands in for ``numpy`` inside imagecorruptions: numpy 2 removed ``np.float_``, which its
    ``plasma_fractal`` (fog) still uses; everything else is numpy itself."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _gaussian_with_multichannel(
    image: np.ndarray, *args: Any, multichannel: bool | None = None, **kwargs: Any
):
    """skimage.filters.gaussian accepting the ``multichannel`` flag removed in scikit-image 0.19
    (``multichannel=True`` meant what ``channel_axis=-1`` means now)."""
    from skimage.filters import gaussian

    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return gaussian(image, *args, **kwargs)


def _random_noise_from_global_rng(image: np.ndarray, mode: str = "gaussian", **kwargs: Any) -> np.ndarray:
    """skimage.util.random_noise driven by numpy's legacy global RNG.

    Modern scikit-image draws from a fresh ``default_rng()`` unless given ``rng``, so impulse_noise
    would ignore ``np.random.seed``; the seed taken here from the global RNG restores the
    original behaviour (seeded global RNG -> reproducible noise)."""
    from skimage.util import random_noise

    kwargs.setdefault("rng", int(np.random.randint(0, 2**31 - 1)))
    return random_noise(image, mode=mode, **kwargs)


def _skimage_namespace() -> types.SimpleNamespace:
    """The ``sk`` object imagecorruptions uses (``sk.color``: brightness, ``sk.util``: impulse noise)."""
    import skimage.color

    return types.SimpleNamespace(
        color=skimage.color, util=types.SimpleNamespace(random_noise=_random_noise_from_global_rng)
    )


def _resource_filename_in(package_dir: Path) -> Callable[[str, str], str]:
    """Replacement for ``pkg_resources.resource_filename`` (setuptools >= 81 no longer ships
    pkg_resources): frost's texture images are plain files next to the module."""

    def resource_filename(_package: str, relative: str) -> str:
        path = (package_dir / relative).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"imagecorruptions resource {relative!r} not found at {path}")
        return str(path)

    return resource_filename


@contextlib.contextmanager
def _pkg_resources_stub() -> Iterator[None]:
    """Lets ``from pkg_resources import resource_filename`` succeed during the import only; the stub
    is removed again so nobody else mistakes it for the real package."""
    if importlib.util.find_spec("pkg_resources") is not None:
        yield
        return
    stub = types.ModuleType("pkg_resources")
    stub.resource_filename = _resource_filename_in(Path("."))  # replaced after import
    sys.modules["pkg_resources"] = stub
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]


@functools.lru_cache(maxsize=1)
def _imagecorruptions() -> types.ModuleType:
    """Import imagecorruptions once and apply the compatibility patches; returns the package."""
    if importlib.util.find_spec("imagecorruptions") is None:
        raise ImportError(_INSTALL_HINT)
    with _pkg_resources_stub(), warnings.catch_warnings():
        # its `from scipy.ndimage.interpolation import map_coordinates` is deprecated, not broken
        warnings.simplefilter("ignore", DeprecationWarning)
        package = importlib.import_module("imagecorruptions")
        module = importlib.import_module("imagecorruptions.corruptions")
    module.np = _NumpyWithRemovedAliases()
    module.gaussian = _gaussian_with_multichannel
    module.sk = _skimage_namespace()
    module.resource_filename = _resource_filename_in(Path(module.__file__).parent)
    return package


# ----------------------------------------------------------------------------------------------------
# RoboDepth's own corruptions
# ----------------------------------------------------------------------------------------------------


def _dark(image: np.ndarray, severity: int) -> np.ndarray:
    """RoboDepth ``dark`` (its ``low_light``): stretch the image's [min, max] to [0, peak] with gamma 2
    (peak 0.6 ... 0.2), then add Poisson noise (600 ... 30 photons at full scale) and Gaussian noise
    (std 0.008 ... 0.038), each followed by clipping to [0, 1]; the result is truncated to uint8
    as RoboDepth's ``np.uint8`` does."""
    x = image.astype(np.float64) / 255.0
    lo, hi = x.min(), x.max()
    # RoboDepth divides by (max - min) unguarded; a constant image (0/0) is mapped to black here.
    stretched = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    x = stretched**DARK_GAMMA * DARK_PEAK[severity - 1]
    photons = DARK_PHOTONS[severity - 1]
    x = np.clip(np.random.poisson(x * photons) / photons, 0.0, 1.0)
    x = np.clip(x + np.random.normal(size=x.shape, scale=DARK_GAUSS_STD[severity - 1]), 0.0, 1.0)
    return (x * 255.0).astype(np.uint8)


def _iso_noise(image: np.ndarray, severity: int) -> np.ndarray:
    """RoboDepth ``iso_noise``: Poisson noise with 25 photons at full scale (the same at every
    severity), then Gaussian noise of std 0.7 x gaussian_noise's (0.056 ... 0.266), each clipped to
    [0, 1]; truncated to uint8."""
    x = image.astype(np.float64) / 255.0
    x = np.clip(np.random.poisson(x * ISO_PHOTONS) / ISO_PHOTONS, 0.0, 1.0)
    x = np.clip(x + np.random.normal(size=x.shape, scale=ISO_GAUSS_STD[severity - 1]), 0.0, 1.0)
    return (x * 255.0).astype(np.uint8)


def _color_quant(image: np.ndarray, severity: int) -> np.ndarray:
    """RoboDepth ``color_quant``: PIL posterize keeping 5, 4, 3, 2, 1 bits per channel."""
    return np.asarray(ImageOps.posterize(Image.fromarray(image), COLOR_QUANT_BITS[severity - 1]))


_OWN_CORRUPTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "dark": _dark,
    "iso_noise": _iso_noise,
    "color_quant": _color_quant,
}


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H x W x 3 uint8), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must have dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape H x W x 3, got {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image sides must be at least {MIN_SIDE} px, got {image.shape[:2]}")


def check_corruption(name: str, severity: int) -> None:
    """Raise if ``name`` is not one of :data:`CORRUPTIONS` or ``severity`` not an int in 1-5."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1-5, got {severity!r}")


@contextlib.contextmanager
def _seeded_global_rng(seed: int | None) -> Iterator[None]:
    """Seed numpy's legacy global RNG for the block and restore the caller's state afterwards."""
    if seed is None:
        yield
        return
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int | None = None) -> np.ndarray:
    """Apply RoboDepth corruption ``name`` at ``severity`` (1 mildest ... 5) to an H x W x 3 uint8 RGB image.

    Returns a new H x W x 3 uint8 image. ``seed`` (an int in [0, 2**32)) makes the random parts
    (noise, frost texture and crop, blur angles, fog fractal, ...) reproducible; ``None`` draws from
    numpy's global RNG. For the KITTI-C protocol pass frames resized with :func:`resize_for_kitti_c`.
    """
    _check_image(image)
    check_corruption(name, severity)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    image = np.ascontiguousarray(image)
    with _seeded_global_rng(seed):
        if name in _OWN_CORRUPTIONS:
            out = _OWN_CORRUPTIONS[name](image, int(severity))
        else:
            out = _imagecorruptions().corrupt(image, severity=int(severity), corruption_name=name)
    out = np.asarray(out)
    if out.shape != image.shape or out.dtype != np.uint8:
        raise RuntimeError(
            f"corruption {name!r} returned {out.shape} {out.dtype} for input {image.shape} uint8"
        )
    return out


def resize_for_kitti_c(image: np.ndarray, size: tuple[int, int] = KITTI_C_SIZE) -> np.ndarray:
    """Resize an H x W x 3 uint8 frame to ``size`` = (height, width) with PIL's LANCZOS filter, as
    RoboDepth does (``Image.ANTIALIAS``, 640x192) before corrupting KITTI frames."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an H x W x 3 uint8 array, got {getattr(image, 'shape', type(image))}"
        )
    height, width = size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def corruption_source(name: str) -> str:
    """'imagecorruptions' or 'robodepth' (own re-implementation), for reports."""
    check_corruption(name, 1)
    return "imagecorruptions" if name in LIBRARY_CORRUPTIONS else "robodepth"
