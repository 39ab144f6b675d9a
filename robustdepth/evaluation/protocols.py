"""Evaluation protocols as data: every choice that changes a reported number is a field here.

A protocol fixes how a predicted depth map is compared with ground truth: how the prediction is resized to
the GT resolution, which GT pixels are valid (depth range, crop), how scale is resolved (per-image median,
a fixed factor, or none), whether predictions are clamped, and whether flip post-processing is used.
:func:`robustdepth.evaluation.evaluate_frame` reads these fields; it never branches on a protocol *name*.

Sources (read for facts, not copied):
- Monodepth2 (MD2): nianticlabs/monodepth2 ``evaluate_depth.py`` (``evaluate``, ``compute_errors``,
  ``batch_post_process_disparity``, ``STEREO_SCALE_FACTOR``).
- md4all: md4all/md4all ``utils/depth.py::compute_depth_metrics`` and ``post_process_inv_depth``,
  ``evaluation/evaluator.py`` (conditions), ``config/config.py`` (``EVALUATION.DEPTH.MIN/MAX_DEPTH``),
  ``config/eval_*_50m_robotcar_test.yaml`` (50 m for RobotCar).
- WeatherDepth (the WeatherKITTI / DrivingStereo protocol SEC-Depth follows): wangjiyuan9/WeatherDepth
  ``Evaluate.py`` and ``options.py`` (``MIN_DEPTH = 1e-3``, ``MAX_DEPTH = 80``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# Allowed values of the enumerated fields (checked in EvalProtocol.__post_init__).
CROPS = ("none", "garg", "eigen")
SCALINGS = ("median", "fixed", "none")
RESIZES = ("disparity", "depth")
INTERPOLATIONS = ("bilinear", "bilinear_align_corners", "nearest")
POST_PROCESS_BLENDS = ("ramp", "mean")
VALID_GT = ("range", "positive")
MEDIANS = ("average", "lower")

# MD2: stereo models are trained with a nominal 0.1 baseline; KITTI's is 0.54 m, so depths are scaled by 5.4.
STEREO_SCALE_FACTOR = 5.4

# md4all counts an image in every condition whose name is a substring of its scene label
# (evaluation/evaluator.py: `if metric_condition in weather`). For nuScenes' four labels: these groups.
MD4ALL_CONDITION_GROUPS: dict[str, tuple[str, ...]] = {
    "day": ("day-clear", "day-rain"),
    "night": ("night-clear", "night-rain"),
    "clear": ("day-clear", "night-clear"),
    "rain": ("day-rain", "night-rain"),
}


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol (pure data; see the module docstring for the sources).

    Attributes:
        name: protocol id, e.g. ``"kitti_eigen"``.
        min_depth, max_depth: GT validity range (``min < gt < max`` when ``valid_gt == "range"``) and the
            clamp range for predictions (metres).
        crop: ``"none"``, ``"garg"`` (Garg et al. crop, MD2's Eigen-split crop) or ``"eigen"``
            (Eigen NIPS'14).
        scaling: ``"median"`` (per image: median(gt)/median(pred) on valid pixels, MD2 mono), ``"fixed"``
            (multiply by ``fixed_scale``, e.g. 5.4 for MD2 stereo) or ``"none"`` (scale-aware models).
        fixed_scale: factor applied to every prediction before median scaling (MD2's
            ``pred_depth_scale_factor``); must be 1.0 when ``scaling == "none"``.
        clamp_pred: clamp scaled predictions to ``[min_depth, max_depth]`` (MD2 and md4all both do).
        resize: ``"disparity"`` = resize 1/depth to the GT size and invert (MD2 resizes its disparity output);
            ``"depth"`` = resize depth directly (md4all).
        interpolation: ``"bilinear"`` (OpenCV INTER_LINEAR, half-pixel centres = torch
            ``align_corners=False``; MD2's ``cv2.resize``), ``"bilinear_align_corners"`` (torch
            ``align_corners=True``; md4all) or ``"nearest"``.
        post_process: the caller should run the network on the flipped image too and blend the two
            disparities with :func:`robustdepth.evaluation.post_process_disparity` before evaluating.
        post_process_blend: ``"ramp"`` (MD2 / md4all: borders from one side, centre averaged) or ``"mean"``
            (WeatherDepth's ``Evaluate.py`` returns the plain mean of the two).
        valid_gt: ``"range"`` = ``min_depth < gt < max_depth``; ``"positive"`` = ``gt > 0`` only (MD2 for
            ``eigen_benchmark``, WeatherDepth for DrivingStereo) -- predictions are still clamped.
        median: ``"average"`` = numpy median (mean of the two middle values, MD2) or ``"lower"`` = the lower
            middle value (``torch.median``, used by md4all/packnet's GT-scaled ``_gt`` metrics).
        description: what paper/protocol this reproduces, with the source file.
    """

    name: str
    min_depth: float
    max_depth: float
    crop: str = "none"
    scaling: str = "median"
    fixed_scale: float = 1.0
    clamp_pred: bool = True
    resize: str = "disparity"
    interpolation: str = "bilinear"
    post_process: bool = False
    post_process_blend: str = "ramp"
    valid_gt: str = "range"
    median: str = "average"
    description: str = ""

    def __post_init__(self) -> None:
        for field_name, allowed in (
            ("crop", CROPS),
            ("scaling", SCALINGS),
            ("resize", RESIZES),
            ("interpolation", INTERPOLATIONS),
            ("post_process_blend", POST_PROCESS_BLENDS),
            ("valid_gt", VALID_GT),
            ("median", MEDIANS),
        ):
            value = getattr(self, field_name)
            if value not in allowed:
                raise ValueError(f"protocol {self.name!r}: {field_name}={value!r} is not one of {allowed}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(
                f"protocol {self.name!r}: need 0 <= min_depth < max_depth, "
                f"got {self.min_depth}, {self.max_depth}"
            )
        if self.clamp_pred and self.min_depth <= 0:
            raise ValueError(f"protocol {self.name!r}: clamp_pred needs min_depth > 0 (log of a clamped 0)")
        if not self.fixed_scale > 0:
            raise ValueError(f"protocol {self.name!r}: fixed_scale must be > 0, got {self.fixed_scale}")
        if self.scaling == "none" and self.fixed_scale != 1.0:
            raise ValueError(
                f"protocol {self.name!r}: scaling='none' contradicts fixed_scale={self.fixed_scale}; "
                "use scaling='fixed'"
            )


_MD2 = "nianticlabs/monodepth2 evaluate_depth.py"
_MD4ALL = "md4all/md4all utils/depth.py::compute_depth_metrics, evaluation/evaluator.py"
_WEATHERDEPTH = "wangjiyuan9/WeatherDepth Evaluate.py (MIN_DEPTH/MAX_DEPTH in options.py)"

# MD2's KITTI Eigen settings; other KITTI-based protocols are variations of it.
_KITTI_EIGEN = EvalProtocol(
    name="kitti_eigen",
    min_depth=1e-3,
    max_depth=80.0,
    crop="garg",
    scaling="median",
    clamp_pred=True,
    resize="disparity",
    interpolation="bilinear",
    description=(
        f"Monodepth2 monocular KITTI Eigen test (697 images): GT 1e-3 < d < 80 m, Garg crop, predicted "
        f"disparity resized to GT size with cv2 bilinear then inverted, per-image median scaling, clamp to "
        f"[1e-3, 80]. Source: {_MD2} (eval_split='eigen')."
    ),
)

_NUSCENES_MD4ALL = EvalProtocol(
    name="nuscenes_md4all",
    min_depth=0.1,
    max_depth=80.0,
    crop="none",
    scaling="none",
    clamp_pred=True,
    resize="depth",
    interpolation="bilinear_align_corners",
    median="lower",
    description=(
        f"md4all nuScenes val (CAM_FRONT, LiDAR projected at 1600x900): GT 0.1 < d < 80 m, no crop, "
        f"predicted *depth* resized to GT size with torch bilinear align_corners=True, clamp to "
        f"[0.1, 80], no GT scaling (md4all reports these non-GT-scaled numbers; its '_gt' variants = "
        f"scaling='median' with torch's lower median, '_pp' = post_process=True). Conditions: "
        f"day-clear / day-rain / night "
        f"(use MD4ALL_CONDITION_GROUPS for md4all's substring groups). Source: {_MD4ALL}."
    ),
)

_WORLD = EvalProtocol(
    name="world",
    min_depth=0.1,
    max_depth=80.0,
    crop="none",
    scaling="median",
    clamp_pred=True,
    resize="disparity",
    interpolation="bilinear",
    description=(
        "robustdepth's embedded all-weather world: dense rendered GT, 0.1 < d < 80 m, no crop; "
        "self-supervised monocular models are scale-ambiguous, so per-image median scaling as KITTI mono "
        "(MD2 order of operations: resize disparity, mask, scale, clamp)."
    ),
)

PROTOCOLS: dict[str, EvalProtocol] = {
    "kitti_eigen": _KITTI_EIGEN,
    "kitti_eigen_stereo": replace(
        _KITTI_EIGEN,
        name="kitti_eigen_stereo",
        scaling="fixed",
        fixed_scale=STEREO_SCALE_FACTOR,
        description=(
            f"Monodepth2 stereo (and mono+stereo) KITTI Eigen: as kitti_eigen but no median scaling; depths "
            f"multiplied by STEREO_SCALE_FACTOR = 5.4 (0.1 training baseline -> 0.54 m). Source: {_MD2} "
            "(--eval_stereo)."
        ),
    ),
    "kitti_eigen_benchmark": replace(
        _KITTI_EIGEN,
        name="kitti_eigen_benchmark",
        crop="none",
        valid_gt="positive",
        description=(
            f"Monodepth2 on the improved KITTI GT (eigen_benchmark split, 652 images): MD2 masks only "
            f"gt > 0 (no crop, no 80 m GT cut) but still clamps predictions to [1e-3, 80]; per-image median "
            f"scaling. "
            f"Source: {_MD2} (eval_split != 'eigen' branch)."
        ),
    ),
    "kitti_odometry_lidar": replace(
        _KITTI_EIGEN,
        name="kitti_odometry_lidar",
        min_depth=0.1,
        description=(
            "KITTI odometry frames with depth GT projected from their LiDAR scans (P2·Tr projection, Monodepth2's "
            "generate_depth_map rules): 0.1 < d < 80 m, Garg crop, disparity resized to the GT size, per-image "
            f"median scaling, clamp [0.1, 80] — kitti_eigen with a 0.1 m floor. Source: {_MD2}."
        ),
    ),
    "weatherkitti": replace(
        _KITTI_EIGEN,
        name="weatherkitti",
        post_process_blend="mean",
        description=(
            f"WeatherKITTI (WeatherDepth / SEC-Depth): Eigen test x 7 conditions (rgb, raingan, fog/150m, "
            f"snowgan, mix_rain/50mm, mix_snow, fog/75m), each as MD2 mono (1e-3-80 m, Garg crop, median, "
            f"clamp); the paper's number is the average over the 7 (equal counts, so = mean over all "
            f"images). "
            f"If post-processing is on, WeatherDepth blends with the plain mean. Source: {_WEATHERDEPTH}."
        ),
    ),
    "weatherkitti_stereo": replace(
        _KITTI_EIGEN,
        name="weatherkitti_stereo",
        scaling="fixed",
        fixed_scale=STEREO_SCALE_FACTOR,
        post_process_blend="mean",
        description=(
            f"WeatherKITTI for stereo-trained models (PlaneDepth / WeatherDepth-dagger in SEC-Depth): as "
            f"weatherkitti with a fixed x5.4 scale instead of median scaling. Source: {_WEATHERDEPTH} "
            "(--eval_stereo)."
        ),
    ),
    "nuscenes_md4all": _NUSCENES_MD4ALL,
    "robotcar_md4all": replace(
        _NUSCENES_MD4ALL,
        name="robotcar_md4all",
        max_depth=50.0,
        description=(
            f"md4all Oxford RobotCar test (day 2014-12-09, night 2014-12-16; 768x1280 crop): as "
            f"nuscenes_md4all with max depth 50 m. Source: {_MD4ALL}, config/eval_*_50m_robotcar_test.yaml."
        ),
    ),
    "drivingstereo": EvalProtocol(
        name="drivingstereo",
        min_depth=1e-3,
        max_depth=80.0,
        crop="none",
        scaling="median",
        clamp_pred=True,
        resize="disparity",
        interpolation="bilinear",
        valid_gt="positive",
        post_process_blend="mean",
        description=(
            f"DrivingStereo weather subsets (rainy/foggy/cloudy/sunny, 500 each), zero-shot: every gt > 0 "
            f"pixel is valid (no crop, no GT range cut: the '0-80 m' of the papers is the prediction clamp "
            f"to "
            f"[1e-3, 80] -- min used: 1e-3 m), cv2-bilinear disparity resize, per-image median scaling. "
            f"Source: {_WEATHERDEPTH} (eval_split='stereo'). Syn2Real/RoSAMDepth's DrivingStereo code is not "
            f"public; for a scale-aware md4all-style run use get_protocol('drivingstereo', scaling='none')."
        ),
    ),
    "world": _WORLD,
    "generic": replace(
        _WORLD,
        name="generic",
        description=(
            "Any folder or dataset with dense or sparse metric GT: 0.1 < d < 80 m, no crop, per-image median "
            "scaling; the start for `robustdepth eval --min-depth/--max-depth/--scaling/--scale/--crop`."
        ),
    ),
    "world_metric": replace(
        _WORLD,
        name="world_metric",
        scaling="none",
        description=(
            "robustdepth's world for scale-aware models (velocity-supervised, md4all-style): as 'world' but "
            "no scaling at all -- metric depth is compared directly."
        ),
    ),
}


def protocol_field_names() -> tuple[str, ...]:
    """Names of the :class:`EvalProtocol` fields (what ``get_protocol`` accepts as overrides)."""
    return tuple(f.name for f in fields(EvalProtocol))


def get_protocol(name: str, **overrides: Any) -> EvalProtocol:
    """Return the registered protocol ``name``, optionally with some fields replaced.

    Example: ``get_protocol("kitti_eigen", post_process=True)`` for MD2's post-processed numbers.

    Raises:
        KeyError: unknown protocol name (the message lists the valid names).
        TypeError: unknown override field (the message lists the valid fields).
    """
    if name not in PROTOCOLS:
        valid_names = ", ".join(sorted(PROTOCOLS))
        raise KeyError(f"unknown evaluation protocol {name!r}; valid protocols: {valid_names}")
    valid = protocol_field_names()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown EvalProtocol field(s) {unknown} for protocol {name!r}; valid fields: {', '.join(valid)}"
        )
    return replace(PROTOCOLS[name], **overrides)
