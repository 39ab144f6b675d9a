"""Image-space weather and sensor translators: clear day frame → night / rain / fog / snow / sensor effects.

Each translator maps a batch ``B×3×H×W`` float image in [0, 1] to the same shape, dtype and device, with a
continuous ``severity`` in [0, 1] (a scalar or one value per image). Severity 0 is the identity (up to float
rounding) and the change to the image grows monotonically with severity, because every random field is drawn
*once* per call (independently of severity) and severity only scales amplitudes or moves thresholds on it.

The translators see only the image and, optionally, a depth map predicted by a teacher network (metres). They
never see the world's true depth or materials, and they are deliberately simpler than a physical renderer
(no light transport, no per-object reflectance): the gap between these images and the world's own rendered
conditions is the synthetic-to-real gap the robust methods must bridge. Without a depth map, a rough depth is
guessed from image position alone (a flat ground plane below an assumed horizon and side walls).

All randomness comes from the optional ``torch.Generator``; with the same seed the output is bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import kornia
import torch
import torch.nn.functional as F

import robustdepth.degrade.filters as filters

# Geometry of the image-position depth prior (KITTI/nuScenes-like forward camera).
HORIZON = 0.45  # horizon row as a fraction of the image height
NEAR_DEPTH = 5.0  # metres at the bottom image row (flat ground seen from ~1.6 m height)
SIDE_DEPTH = 10.0  # metres of side structures at the left/right image edges
FAR_DEPTH = 80.0  # metres where nothing nearer is assumed (sky, road ahead; the usual evaluation cap)

# Per-condition tints (RGB) and constants; kept here so their meaning is in one place.
NIGHT_TINT = (0.72, 0.85, 1.08)  # scotopic blue shift at full severity
LAMP_COLOUR = (1.0, 0.82, 0.55)  # sodium/halogen glow around estimated light sources
RAIN_SKY = (0.62, 0.64, 0.67)  # overcast grey the rainy scene is pulled towards
SNOW_WHITE = (0.93, 0.95, 0.98)  # slightly blue snow
GAMMA = 2.2  # display gamma of the simple camera model used by low_exposure
FOG_BETA_MAX = 0.09  # extinction (1/m) at severity 1 → meteorological visibility ≈ 43 m

Translator = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None, torch.Tensor | None], torch.Tensor]


# ----------------------------------------------------------------------------------------------- validation
def check_images(images: torch.Tensor) -> None:
    """Raise a clear error unless ``images`` is a float ``B×3×H×W`` tensor with values in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape B×3×H×W, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor in [0, 1], got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)})")
    lo, hi = float(images.detach().min()), float(images.detach().max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must have values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")


def severity_tensor(severity: float | torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Return the severity as a ``B×1×1×1`` tensor (images' dtype/device) after checking it lies in [0, 1]."""
    batch = images.shape[0]
    s = torch.as_tensor(severity, dtype=images.dtype).detach().to(images.device)
    if s.ndim == 0:
        s = s.expand(batch)
    if s.ndim != 1 or s.shape[0] != batch:
        raise ValueError(f"severity must be a scalar or a tensor of shape ({batch},), got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all() or float(s.min()) < 0 or float(s.max()) > 1:
        raise ValueError(f"severity must lie in [0, 1], got {s.tolist()}")
    return s.reshape(batch, 1, 1, 1)


# --------------------------------------------------------------------------------------------- random fields
def _rand(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) noise drawn on the generator's device, then moved to ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device, like.dtype)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn like :func:`_rand`."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device, like.dtype)


def _low_frequency_noise(images: torch.Tensor, cell: int, generator: torch.Generator | None) -> torch.Tensor:
    """Smooth ``B×1×H×W`` noise in [0, 1] with features about ``cell`` pixels wide (bicubic-upsampled grid)."""
    b, _, h, w = images.shape
    grid = _rand((b, 1, max(2, h // cell + 2), max(2, w // cell + 2)), generator, images)
    return filters.resize(grid, (h, w), cubic=True).clamp_(0, 1)


def _sparse_points(images: torch.Tensor, size: tuple[int, int], max_fraction: float, s: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """``B×1×h×w`` map of random points (brightness 0.5–1) covering up to ``max_fraction`` of the pixels.

    ``max_fraction·h·w`` positions are always drawn; image i keeps the first ``s_i`` fraction of them, so a
    higher severity only adds points (monotone change) and the draws do not depend on severity.
    """
    b = images.shape[0]
    h, w = size
    count = max(1, round(max_fraction * h * w))
    position = _rand((b, count), generator, images)
    brightness = 0.5 + 0.5 * _rand((b, count), generator, images)
    active = torch.arange(count, device=images.device) < (s.reshape(b, 1) * count)
    flat_index = (position * (h * w)).long().clamp_max(h * w - 1)
    canvas = torch.zeros((b, h * w), dtype=images.dtype, device=images.device)
    canvas.scatter_reduce_(1, flat_index, brightness * active, reduce="amax")
    return canvas.reshape(b, 1, h, w)


# ------------------------------------------------------------------------------------------------- helpers
def _tint(colour: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(colour, dtype=like.dtype, device=like.device).reshape(1, 3, 1, 1)


def _luminance(images: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_grayscale(images)


def _lerp(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | float) -> torch.Tensor:
    """``a + (b − a)·weight`` in one fused kernel (torch.lerp broadcasts all three natively)."""
    if isinstance(weight, torch.Tensor):
        weight = weight.to(a.dtype)
    return torch.lerp(a, b, weight)


def image_position_depth(height: int, width: int, horizon: float = HORIZON, near: float = NEAR_DEPTH,
                         side: float = SIDE_DEPTH, far: float = FAR_DEPTH, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A rough ``1×1×H×W`` depth (m) from image position only: a "corridor" of ground plane and side walls.

    Ground depth is inversely proportional to the row's distance below the horizon (pinhole camera over a
    plane), scaled so the bottom row is at ``near`` metres; side structures (trees, buildings, parked cars)
    are walls whose depth is inversely proportional to the column's distance from the centre, ``side`` metres
    at the image edges. Each pixel takes the nearer surface, capped at ``far``; the centre above the horizon
    (sky, road ahead) is therefore far.
    """
    rows = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    cols = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    ground = near * (1 - horizon) / (rows - horizon).clamp_min(1e-6)
    walls = side * 0.5 / (cols - 0.5).abs().clamp_min(1e-6)
    depth = torch.minimum(ground.reshape(height, 1), walls.reshape(1, width)).clamp(max=far)
    return depth.reshape(1, 1, height, width)


def ground_weight(height: int, width: int, like: torch.Tensor, horizon: float = HORIZON) -> torch.Tensor:
    """``1×1×H×1`` weight rising from 0 at the horizon to 1 a little below it: where the ground likely is."""
    rows = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) / height
    return ((rows - horizon) / 0.12).clamp(0, 1).reshape(1, 1, height, 1)


def resolve_depth(images: torch.Tensor, depth: torch.Tensor | None) -> torch.Tensor:
    """The depth (m) the translators use: a teacher's prediction resized to the image, or the position prior.

    ``depth`` may be ``B×1×h×w`` or ``B×h×w`` (any resolution; bilinearly resized) with positive values.
    """
    b, _, h, w = images.shape
    if depth is None:
        return image_position_depth(h, w, device=images.device, dtype=images.dtype).expand(b, 1, h, w)
    if not isinstance(depth, torch.Tensor):
        raise TypeError(f"depth must be a torch.Tensor or None, got {type(depth).__name__}")
    if depth.ndim == 3:
        depth = depth.unsqueeze(1)
    if depth.ndim != 4 or depth.shape[1] != 1 or depth.shape[0] != b:
        raise ValueError(f"depth must have shape {b}×1×H×W or {b}×H×W, got {tuple(depth.shape)}")
    depth = depth.to(images.device, images.dtype)
    if not torch.isfinite(depth).all() or float(depth.min()) <= 0:
        raise ValueError("depth must be finite and positive (metres, e.g. a teacher's prediction)")
    if depth.shape[-2:] != (h, w):
        depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)
    return depth


def _sensor_noise(images: torch.Tensor, shot: torch.Tensor, read: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Add shot noise (variance ``shot²·x``) plus read noise (variance ``read²``) as one Gaussian draw."""
    std = (images.clamp_min(0) * shot.square()).add_(read.square()).sqrt_()
    return torch.addcmul(images, std, _randn(tuple(images.shape), generator, images))


def _koschmieder(images: torch.Tensor, depth: torch.Tensor, beta: torch.Tensor,
                 airlight: torch.Tensor) -> torch.Tensor:
    """Koschmieder's law ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``: attenuation plus scattered airlight."""
    transmission = torch.exp(-beta * depth)
    return _lerp(airlight, images, transmission)


# ------------------------------------------------------------------------------------------------ weather
def _light_sources(lum: torch.Tensor) -> torch.Tensor:
    """``B×1×H×W`` weight of pixels guessed to be light sources (lamps, lights, specular glints).

    A light is bright (luminance > ~0.75), brighter than its neighbourhood (top-hat), and small: where a large
    area is bright (sky, a white wall) the bright-area fraction around it is high and the weight is suppressed,
    so the sky turns dark instead of glowing. ``lum`` is the image's ``B×1×H×W`` luminance.
    """
    bright = ((lum - 0.72) / 0.2).clamp(0, 1)
    context = filters.wide_blur(torch.cat([lum, bright], dim=1), 8, 2.0)
    local_mean, bright_fraction = context[:, :1], context[:, 1:]
    contrast = ((lum - local_mean - 0.1) / 0.15).clamp(0, 1)
    small = (1 - bright_fraction / 0.25).clamp(0, 1)
    return bright * contrast * small


def _headlight_cone(images: torch.Tensor) -> torch.Tensor:
    """``1×1×H×W`` soft ellipse on the road ahead, where the ego vehicle's own headlights fall."""
    h, w = images.shape[-2:]
    rows = (torch.arange(h, device=images.device, dtype=images.dtype) + 0.5) / h
    cols = (torch.arange(w, device=images.device, dtype=images.dtype) + 0.5) / w
    dy = ((rows - 1.0) / 0.35).reshape(1, 1, h, 1)
    dx = ((cols - 0.5) / 0.3).reshape(1, 1, 1, w)
    return torch.exp(-(dx.square() + dy.square())) * ground_weight(h, w, images)


def _sky_weight(lum: torch.Tensor) -> torch.Tensor:
    """``B×1×H×W`` weight of pixels guessed to be sky: bright and above the horizon (fading in just above it)."""
    h = lum.shape[-2]
    rows = (torch.arange(h, device=lum.device, dtype=lum.dtype) + 0.5) / h
    above = ((HORIZON - rows) / 0.1).clamp(0, 1).reshape(1, 1, h, 1)
    return above * ((lum - 0.45) / 0.3).clamp(0, 1)


def night(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
          depth: torch.Tensor | None = None) -> torch.Tensor:
    """Day → night: gamma darkening, dark sky, blue shift and desaturation, headlight cone, lights, noise.

    Light sources are estimated from small bright pixels (:func:`_light_sources`); they keep their brightness
    and get a warm glow. ``depth`` is unused (no depth-dependent term in this simple model).
    """
    lum = _luminance(images)
    lights = _light_sources(lum)
    glow = filters.wide_blur(lights, 4, 3.0)
    glow = glow / glow.amax(dim=(2, 3), keepdim=True).clamp_min(0.2)

    gain = (1 - 0.72 * s) * (1 - 0.6 * s * _sky_weight(lum))  # B×1×H×W: overall and sky darkening
    dark = images.clamp_min(0).pow(1 + 1.3 * s).mul_(gain)
    dark = _lerp(dark, _luminance(dark), 0.45 * s)  # colour vision fades in the dark
    dark = dark.mul_(_lerp(torch.ones_like(s), _tint(NIGHT_TINT, images), s))
    dark = _lerp(dark, images * 0.7, 0.45 * s * _headlight_cone(images))
    lit = _lerp(dark, images, lights * s).addcmul_(0.4 * s * glow, _tint(LAMP_COLOUR, images))
    return _sensor_noise(lit, 0.06 * s, 0.012 * s, generator).clamp_(0, 1)


def _rain_streaks(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``B×1×H×W`` streak opacity: a near layer (long, ~2 px wide, sparse) and a far one (short, thin, dense).

    Points are smeared along one wind angle per image (motion blur); the near layer is drawn at half
    resolution and enlarged, which makes it wider and cheaper.
    """
    b, _, h, w = images.shape
    angles = 90 + 30 * (_rand((b,), generator, images) - 0.5)  # degrees; 90 = vertical fall
    total = torch.zeros((b, 1, h, w), dtype=images.dtype, device=images.device)
    for scale, length_frac, fraction in ((2, 0.07, 0.006), (1, 0.045, 0.004)):
        size = (math.ceil(h / scale), math.ceil(w / scale))
        length = max(3, 2 * round(length_frac * h / 2) + 1)
        points = _sparse_points(images, size, fraction, s, generator)
        streak = filters.motion_blur(points, length, angles) * (0.6 * length)
        if scale > 1:
            streak = filters.resize(streak, (h, w))
        total = total + streak
    return total.clamp(0, 1)


def _wet_ground(images: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Darken the likely ground and mix in a blurred mirror image of the scene above it (wet reflections)."""
    h, w = images.shape[-2:]
    ground = ground_weight(h, w, images)
    # Mirror rows about the horizon on a 4×-shrunk, blurred copy (reflections are blurry anyway), then enlarge.
    small = filters.gaussian_blur(filters.resize(images, (max(2, h // 4), max(2, w // 4))), 0.75)
    rows = small.shape[-2]
    source_rows = (2 * int(HORIZON * rows) - torch.arange(rows, device=images.device)).clamp(0, rows - 1)
    reflection = filters.resize(small[:, :, source_rows, :], (h, w))
    wet = images * (1 - 0.3 * s * ground)
    return _lerp(wet, reflection.mul_(0.8), 0.25 * s * ground)


def rain(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
         depth: torch.Tensor | None = None) -> torch.Tensor:
    """Day-clear → day-rain: overcast (desaturated, darker, flatter), wet ground, mild haze, slight blur, streaks."""
    distance = resolve_depth(images, depth)
    overcast = _lerp(images, _luminance(images), 0.5 * s)
    overcast = _lerp(overcast, _tint(RAIN_SKY, images), 0.2 * s).mul_(1 - 0.22 * s)
    wet = _wet_ground(overcast, s)
    hazy = _koschmieder(wet, distance, 0.015 * s, _tint(RAIN_SKY, images))
    soft = _lerp(hazy, filters.gaussian_blur(hazy, 1.0), 0.7 * s)
    streaks = _rain_streaks(images, s, generator) * (0.45 + 0.25 * s)
    return _lerp(soft, torch.full_like(s, 0.9), streaks).clamp_(0, 1)


def fog(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
        depth: torch.Tensor | None = None) -> torch.Tensor:
    """Clear → fog with Koschmieder's law on the teacher depth (or the image-position prior).

    Extinction β grows linearly with severity up to ``FOG_BETA_MAX`` and is modulated ±25 % by smooth random
    patches (fog is not homogeneous). Airlight is a bright grey estimated from the image: the 99th percentile
    of (area-averaged) luminance, limited to [0.7, 0.95].
    """
    h, w = images.shape[-2:]
    distance = resolve_depth(images, depth)
    patches = _low_frequency_noise(images, 48, generator)
    beta = FOG_BETA_MAX * s * (0.75 + 0.5 * patches)
    small_lum = filters.resize(_luminance(images), (max(1, h // 4), max(1, w // 4))).flatten(1)
    bright = torch.quantile(small_lum.float(), 0.99, dim=1).to(images.dtype).clamp(0.7, 0.95)
    airlight = bright.reshape(-1, 1, 1, 1) * _tint((0.97, 0.99, 1.0), images)
    return _koschmieder(images, distance, beta, airlight).clamp_(0, 1)


def _snow_cover(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``B×1×H×W`` snow-cover weight: likely ground (below the horizon) × smooth texture × growing patches.

    Low-gradient areas below the horizon are mostly upward-facing (road, pavement, lawns, car roofs), where snow
    settles; strong edges and vertical structure stay partly uncovered. Cover grows from random patches.
    """
    h, w = images.shape[-2:]
    lum = filters.resize(_luminance(images), (max(2, h // 2), max(2, w // 2)))
    dx = (lum[..., :-1, 1:] - lum[..., :-1, :-1]).abs()
    dy = (lum[..., 1:, :-1] - lum[..., :-1, :-1]).abs()
    gradient = dx + dy
    flat = filters.resize((1 - filters.gaussian_blur(gradient, 1.0) / 0.15).clamp(0, 1), (h, w))
    patches = 0.6 * _low_frequency_noise(images, 16, generator) + 0.4 * _low_frequency_noise(images, 4, generator)
    coverage = ((1.4 * s - patches) / 0.35).clamp(0, 1)
    return ground_weight(h, w, images) * (0.3 + 0.7 * flat) * coverage


def _snowflakes(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``B×1×H×W`` flake opacity in three size classes (1–2 px far flakes to ~6 px soft near flakes)."""
    b, _, h, w = images.shape
    total = torch.zeros((b, 1, h, w), dtype=images.dtype, device=images.device)
    for scale, fraction in ((1, 0.004), (2, 0.005), (4, 0.004)):
        flakes = _sparse_points(images, (math.ceil(h / scale), math.ceil(w / scale)), fraction, s, generator)
        if scale == 1:
            flakes = filters.gaussian_blur(flakes, 0.5) * 2.0
        else:
            flakes = filters.resize(flakes, (h, w)) * 1.3
        total = total + flakes
    return total.clamp(0, 1)


def snow(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
         depth: torch.Tensor | None = None) -> torch.Tensor:
    """Clear → snow: bright low-contrast light, whitened upward-facing regions, haze, slight blur, flakes."""
    distance = resolve_depth(images, depth)
    white = _tint(SNOW_WHITE, images)
    flat_light = _lerp(images, white * 0.85, 0.35 * s)
    shaded_snow = white * (0.6 + 0.4 * (_luminance(images) / 0.5).clamp(0, 1))  # shadows stay on snow
    covered = _lerp(flat_light, shaded_snow, 0.9 * _snow_cover(images, s, generator))
    hazy = _koschmieder(covered, distance, 0.02 * s, white * 0.9)
    soft = _lerp(hazy, filters.gaussian_blur(hazy, 1.0), 0.5 * s)
    flakes = _snowflakes(images, s, generator) * (0.6 + 0.35 * s)
    return _lerp(soft, white, flakes).clamp_(0, 1)


# ------------------------------------------------------------------------------------------------- sensor
def noise(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
          depth: torch.Tensor | None = None) -> torch.Tensor:
    """Sensor noise: shot noise (std ∝ √signal) plus read noise, both proportional to severity."""
    return _sensor_noise(images, 0.15 * s, 0.04 * s, generator).clamp_(0, 1)


def blur(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
         depth: torch.Tensor | None = None) -> torch.Tensor:
    """Defocus-like Gaussian blur, σ = 3 px × severity (per image); deterministic."""
    return filters.gaussian_blur(images, (3.0 * s.reshape(-1)).tolist()).clamp(0, 1)


def low_exposure(images: torch.Tensor, s: torch.Tensor, generator: torch.Generator | None = None,
                 depth: torch.Tensor | None = None) -> torch.Tensor:
    """Under-exposure: scale linear radiance by 2^(−4·severity) (up to −4 EV) and add sensor noise there.

    The camera response is a plain 2.2 power law (simpler than sRGB's piecewise curve, and cheaper): scaling
    the exposure is then a multiplication of the encoded image by 2^(−4·s/2.2) before noise is added in linear.
    """
    linear = (images.clamp(0, 1) * torch.exp2(-4.0 * s / GAMMA)).pow_(GAMMA)
    noisy = _sensor_noise(linear, 0.02 * s, 0.002 * s, generator).clamp_(0, 1)
    return noisy.pow_(1 / GAMMA)


# ----------------------------------------------------------------------------------------------- registry
# name → translator ``fn(images, severity_B111, generator, depth)``; call them through :func:`translate`, which
# validates the inputs and turns a scalar / (B,) severity into the ``B×1×1×1`` tensor they expect.
TRANSLATORS: dict[str, Translator] = {
    "night": night,
    "rain": rain,
    "fog": fog,
    "snow": snow,
    "noise": noise,
    "blur": blur,
    "low_exposure": low_exposure,
}
CONDITIONS: tuple[str, ...] = tuple(TRANSLATORS)
WEATHER_CONDITIONS: tuple[str, ...] = ("night", "rain", "fog", "snow")


def get_translator(condition: str) -> Translator:
    """Look a translator up by name; an unknown name raises a ``KeyError`` listing the valid ones."""
    if condition not in TRANSLATORS:
        raise KeyError(f"unknown degradation condition {condition!r}; valid conditions: {', '.join(CONDITIONS)}")
    return TRANSLATORS[condition]


def translate(images: torch.Tensor, condition: str, severity: float | torch.Tensor,
              generator: torch.Generator | None = None, depth: torch.Tensor | None = None) -> torch.Tensor:
    """Translate clear ``B×3×H×W`` images in [0, 1] to ``condition`` at ``severity`` ∈ [0, 1].

    Args:
        images: float tensor ``B×3×H×W`` in [0, 1] (any float dtype / device).
        condition: one of :data:`CONDITIONS` (``night``, ``rain``, ``fog``, ``snow``, ``noise``, ``blur``,
            ``low_exposure``).
        severity: a scalar or a ``(B,)`` tensor in [0, 1]; 0 leaves the image (nearly) unchanged.
        generator: source of all randomness (streaks, flakes, noise, fog patches); same seed → same output.
            ``None`` uses torch's global generator.
        depth: optional teacher-predicted depth in metres, ``B×1×h×w`` or ``B×h×w`` (resized to the image).
            Never pass ground-truth depth: the translators are meant to see only what a real pipeline has.

    Returns:
        The translated images, same shape, dtype and device, clamped to [0, 1].
    """
    translator = get_translator(condition)
    check_images(images)
    s = severity_tensor(severity, images)
    out = translator(images, s, generator, depth)
    return out.to(images.dtype).contiguous()  # OpenCV-filtered results may come back channels-last
