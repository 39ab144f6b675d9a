"""Per-frame evaluation in Monodepth2's exact order of operations, condition-wise aggregation, results.json.

Order (nianticlabs/monodepth2 ``evaluate_depth.py::evaluate``):
    1. resize the prediction to the GT resolution (MD2: its *disparity* with ``cv2.resize``, then 1/disp);
    2. valid mask: ``min < gt < max`` and the crop (or only ``gt > 0``, see ``EvalProtocol.valid_gt``);
    3. keep valid pixels; multiply by the fixed factor, then by median(gt)/median(pred) if median scaling;
    4. clamp predictions to ``[min_depth, max_depth]``;
    5. ``compute_depth_errors`` on the 1-D arrays. Dataset numbers are the mean of per-image metrics.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robustdepth.evaluation.metrics import METRIC_NAMES, compute_depth_errors
from robustdepth.evaluation.protocols import EvalProtocol

# Garg et al. crop as fractions of (height, height, width, width): MD2 evaluate_depth.py, eval_split "eigen".
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen NIPS'14 crop (monodepth v1 evaluate_kitti.py "crop we found by trial and error").
EIGEN_CROP_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)

ALL_CONDITION = "all"
# Top-level keys of a summary / results.json that are not conditions.
RESERVED_KEYS = ("counts", "scale_ratio", "protocol", "extra")
# Per-frame entries kept out of the metric means.
FRAME_EXTRAS = ("ratio", "valid_pixels")


# ----------------------------------------------------------------------------------------------- crops


def _crop_mask_from_fractions(height: int, width: int, fractions: Sequence[float]) -> np.ndarray:
    """Boolean (H, W) mask that is True inside the box given as fractions, truncated to int like MD2."""
    if height <= 0 or width <= 0:
        raise ValueError(f"crop mask needs a positive size, got {height}x{width}")
    top, bottom, left, right = np.array(
        [fractions[0] * height, fractions[1] * height, fractions[2] * width, fractions[3] * width]
    ).astype(np.int32)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """Garg crop (MD2's KITTI Eigen crop): rows 153:371, cols 44:1197 on a 375x1242 frame."""
    return _crop_mask_from_fractions(height, width, GARG_CROP_FRACTIONS)


def eigen_crop_mask(height: int, width: int) -> np.ndarray:
    """Eigen et al. (NIPS'14) crop, as in monodepth v1's ``evaluate_kitti.py``."""
    return _crop_mask_from_fractions(height, width, EIGEN_CROP_FRACTIONS)


def crop_mask(crop: str, height: int, width: int) -> np.ndarray:
    """Crop mask by protocol crop name (``"none"`` gives an all-True mask)."""
    if crop == "garg":
        return garg_crop_mask(height, width)
    if crop == "eigen":
        return eigen_crop_mask(height, width)
    if crop == "none":
        return np.ones((height, width), dtype=bool)
    raise ValueError(f"unknown crop {crop!r}; valid: 'none', 'garg', 'eigen'")


# ------------------------------------------------------------------------------------ post-processing


def _ramp_masks_numpy(width: int) -> tuple[np.ndarray, np.ndarray]:
    """MD2's left-border weight (1 on the left ~5 %, ramping to 0 by ~10 %) and its mirror."""
    ramp = np.linspace(0.0, 1.0, width)
    left = 1.0 - np.clip(20.0 * (ramp - 0.05), 0.0, 1.0)
    return left, left[::-1].copy()


def post_process_disparity(disp: Any, disp_flipped: Any, blend: str = "ramp") -> Any:
    """Blend a disparity map with the one predicted from the horizontally flipped image.

    ``disp_flipped`` is the network output for the *flipped input, as produced* (not yet flipped back);
    this function flips it back along the last axis. With ``blend="ramp"`` (MD2's
    ``batch_post_process_disparity``, md4all's ``post_process_inv_depth``) the left border comes from the
    flipped prediction, the right border from the original, the centre is their mean (the borders are where
    each view saw no content on that side). ``blend="mean"`` is the plain mean (WeatherDepth's Evaluate.py).

    Works on numpy arrays and torch tensors of shape (..., H, W), e.g. (H, W), (B, H, W) or (B, 1, H, W).
    """
    if tuple(disp.shape) != tuple(disp_flipped.shape):
        raise ValueError(
            f"disp and disp_flipped must have the same shape, got {tuple(disp.shape)} and "
            f"{tuple(disp_flipped.shape)}"
        )
    if len(disp.shape) < 2:
        raise ValueError(f"disparity maps need at least 2 dims (..., H, W), got shape {tuple(disp.shape)}")
    if blend not in ("ramp", "mean"):
        raise ValueError(f"unknown post-processing blend {blend!r}; valid: 'ramp', 'mean'")

    is_torch = hasattr(disp, "detach")
    if is_torch:
        import torch

        back = torch.flip(disp_flipped, dims=[-1])
    else:
        disp = np.asarray(disp)
        back = np.asarray(disp_flipped)[..., ::-1]
    mean = 0.5 * (disp + back)
    if blend == "mean":
        return mean

    left, right = _ramp_masks_numpy(int(disp.shape[-1]))
    if is_torch:
        left = torch.as_tensor(left, dtype=disp.dtype, device=disp.device)
        right = torch.as_tensor(right, dtype=disp.dtype, device=disp.device)
    # Weights broadcast along the last (width) axis.
    return right * disp + left * back + (1.0 - left - right) * mean


# --------------------------------------------------------------------------------------------- frames


def _as_2d(values: Any, what: str) -> np.ndarray:
    """numpy view of a depth map, accepting (H, W) or leading singleton axes such as (1, H, W)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (H, W) depth map, got shape {np.shape(values)}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr


def _resize_map(values: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """Resize one float map to (height, width) with the protocol's interpolation."""
    if interpolation == "bilinear_align_corners":
        import torch
        import torch.nn.functional as F

        tensor = torch.from_numpy(np.ascontiguousarray(values))[None, None]
        resized = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=True)
        return resized[0, 0].numpy()
    flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}.get(interpolation)
    if flag is None:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    return cv2.resize(np.ascontiguousarray(values), (width, height), interpolation=flag)


def resize_prediction(pred_depth: Any, size: tuple[int, int], protocol: EvalProtocol) -> np.ndarray:
    """Bring a predicted depth map to the GT resolution ``size = (H, W)`` as the protocol prescribes.

    ``resize="disparity"`` resizes 1/depth and inverts the result (MD2 resizes its disparity output),
    ``"depth"`` resizes depth itself (md4all). float32 input stays float32 through the resize, as in MD2.
    """
    pred = _as_2d(pred_depth, "pred_depth")
    dtype = np.float32 if pred.dtype == np.float32 else np.float64
    pred = pred.astype(dtype, copy=False)
    height, width = size
    if pred.shape == (height, width):
        return pred.copy()
    if protocol.resize == "disparity":
        return 1.0 / _resize_map(1.0 / pred, height, width, protocol.interpolation)
    return _resize_map(pred, height, width, protocol.interpolation)


def valid_mask(gt_depth: np.ndarray, protocol: EvalProtocol) -> np.ndarray:
    """Pixels of ``gt_depth`` that count under ``protocol`` (depth range or ``gt > 0``, and the crop)."""
    finite = np.isfinite(gt_depth)
    if protocol.valid_gt == "positive":
        mask = finite & (gt_depth > 0)
    else:
        mask = finite & (gt_depth > protocol.min_depth) & (gt_depth < protocol.max_depth)
    return mask & crop_mask(protocol.crop, *gt_depth.shape)


def _median(values: np.ndarray, kind: str) -> float:
    """numpy median (``"average"``) or the lower middle value (``"lower"``, what ``torch.median`` returns)."""
    if kind == "lower":
        k = (values.size - 1) // 2
        return float(np.partition(values, k)[k])
    return float(np.median(values))


def evaluate_frame(gt_depth: Any, pred_depth: Any, protocol: EvalProtocol, name: str | None = None) -> dict:
    """Evaluate one predicted depth map against its GT under ``protocol`` (MD2 order of operations).

    Args:
        gt_depth: (H, W) ground-truth depth in metres; invalid pixels are 0 (or NaN).
        pred_depth: (h, w) predicted depth (any resolution, > 0 everywhere); resized to (H, W).
        protocol: the :class:`EvalProtocol`.
        name: frame id used in error messages.

    Returns:
        The seven metrics plus ``"ratio"`` (the median ratio applied, or the fixed factor; 1.0 without
        scaling) and ``"valid_pixels"``; the two extras are not metrics and are never averaged as such.
    """
    label = f"frame {name!r}" if name is not None else "frame"
    gt = _as_2d(gt_depth, f"gt_depth of {label}").astype(np.float64, copy=False)
    pred_raw = _as_2d(pred_depth, f"pred_depth of {label}")
    bad = ~np.isfinite(pred_raw) | (pred_raw <= 0)
    if bad.any():
        raise ValueError(
            f"pred_depth of {label} must be finite and > 0 everywhere; {int(bad.sum())} bad pixel(s)"
        )

    pred = resize_prediction(pred_raw, gt.shape, protocol)
    mask = valid_mask(gt, protocol)
    n_valid = int(mask.sum())
    if n_valid == 0:
        raise ValueError(
            f"{label}: no valid GT pixels under protocol {protocol.name!r} (gt shape {gt.shape}, "
            f"valid_gt={protocol.valid_gt!r}, range ({protocol.min_depth}, {protocol.max_depth}), "
            f"crop={protocol.crop!r}); check the GT file"
        )
    gt_valid = gt[mask]
    pred_valid = pred[mask].astype(np.float64) * protocol.fixed_scale

    ratio = protocol.fixed_scale
    if protocol.scaling == "median":
        ratio = _median(gt_valid, protocol.median) / _median(pred_valid, protocol.median)
        pred_valid = pred_valid * ratio
    if protocol.clamp_pred:
        pred_valid = np.clip(pred_valid, protocol.min_depth, protocol.max_depth)

    errors: dict[str, float] = compute_depth_errors(gt_valid, pred_valid)
    errors["ratio"] = float(ratio)
    errors["valid_pixels"] = float(n_valid)
    return errors


# ---------------------------------------------------------------------------------------- aggregation


def _mean_metrics(frames: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per-image mean of each metric (MD2: ``np.array(errors).mean(0)``)."""
    return {metric: float(np.mean([frame[metric] for frame in frames])) for metric in METRIC_NAMES}


def _ratio_stats(frames: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """MD2's scale statistic: median of the per-image ratios and std of ratios / median."""
    ratios = np.array([frame["ratio"] for frame in frames], dtype=np.float64)
    med = float(np.median(ratios))
    return {"median": med, "std": float(np.std(ratios / med))}


class DepthEvaluator:
    """Accumulates per-frame results and summarises them per condition, md4all style.

    ``summary()`` gives one entry per condition label (mean over that condition's images), one per group
    (e.g. md4all's ``"night"`` = night-clear + night-rain, see ``MD4ALL_CONDITION_GROUPS``), and ``"all"``
    = mean over *every* image (not the mean of condition means), plus ``"counts"`` and, with median
    scaling, ``"scale_ratio"``.
    """

    def __init__(self, protocol: EvalProtocol, groups: Mapping[str, Sequence[str]] | None = None) -> None:
        if not isinstance(protocol, EvalProtocol):
            raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
        self.protocol = protocol
        self.groups = {str(k): tuple(v) for k, v in (groups or {}).items()}
        for group in self.groups:
            self._check_condition_name(group, "group")
        self._frames: list[dict[str, Any]] = []

    @staticmethod
    def _check_condition_name(condition: Any, what: str = "condition") -> None:
        if not isinstance(condition, str) or not condition:
            raise ValueError(f"{what} must be a non-empty string, got {condition!r}")
        if condition in RESERVED_KEYS:
            raise ValueError(f"{what} {condition!r} is reserved (reserved names: {RESERVED_KEYS})")
        if what == "group" and condition == ALL_CONDITION:
            raise ValueError(f"group name {ALL_CONDITION!r} is reserved for the mean over every image")

    def __len__(self) -> int:
        return len(self._frames)

    def add(
        self, gt_depth: Any, pred_depth: Any, condition: str = ALL_CONDITION, name: str | None = None
    ) -> dict:
        """Evaluate one frame, store it under ``condition``; return its metrics (see ``evaluate_frame``)."""
        self._check_condition_name(condition)
        if condition in self.groups:
            raise ValueError(f"condition {condition!r} is also a group name; label frames with the members")
        frame_name = name if name is not None else f"frame_{len(self._frames):06d}"
        result = evaluate_frame(gt_depth, pred_depth, self.protocol, name=frame_name)
        self._frames.append({"name": frame_name, "condition": condition, **result})
        return dict(result)

    def per_frame(self) -> list[dict[str, Any]]:
        """Every frame's record (name, condition, metrics, ratio, valid_pixels), in the order added."""
        return [dict(frame) for frame in self._frames]

    def _entries(self) -> dict[str, list[dict[str, Any]]]:
        """Frames per summary entry: each condition label, each non-empty group, then ``"all"``."""
        entries: dict[str, list[dict[str, Any]]] = {}
        for frame in self._frames:
            if frame["condition"] != ALL_CONDITION:
                entries.setdefault(frame["condition"], []).append(frame)
        for group, members in self.groups.items():
            frames = [frame for frame in self._frames if frame["condition"] in members]
            if frames:
                entries[group] = frames
        entries[ALL_CONDITION] = list(self._frames)
        return entries

    def summary(self) -> dict[str, dict[str, float]]:
        """``{condition: {metric: mean}, ..., "all": {...}, "counts": {...}[, "scale_ratio": {...}]}``."""
        if not self._frames:
            raise ValueError("DepthEvaluator.summary(): no frames were added")
        entries = self._entries()
        result: dict[str, dict[str, float]] = {key: _mean_metrics(frames) for key, frames in entries.items()}
        result["counts"] = {key: len(frames) for key, frames in entries.items()}
        if self.protocol.scaling == "median":
            result["scale_ratio"] = {key: _ratio_stats(frames) for key, frames in entries.items()}
        return result


# --------------------------------------------------------------------------------------- results.json


def condition_names(summary: Mapping[str, Any]) -> list[str]:
    """The condition entries of a summary / results dict, in order (everything but the reserved keys)."""
    return [key for key in summary if key not in RESERVED_KEYS]


def _check_finite(value: Any, where: str) -> None:
    """Refuse NaN/inf anywhere in what goes to results.json (they are not valid JSON)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"results value {where} is {value}, which JSON cannot store")


def write_results(
    path: str | os.PathLike,
    summary: Mapping[str, Any],
    protocol: EvalProtocol,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``results.json``: ``{condition: {metric: value}, ..., "protocol": {...}, "counts": {...}}``.

    ``scale_ratio`` (when present) and ``extra`` (e.g. checkpoint, split) are stored as further top-level
    keys. The file is written atomically (temporary file + rename).
    """
    if not isinstance(protocol, EvalProtocol):
        raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
    if "counts" not in summary or ALL_CONDITION not in summary:
        raise ValueError(f"summary must come from DepthEvaluator.summary() (has keys {list(summary)})")
    results: dict[str, Any] = {key: dict(summary[key]) for key in condition_names(summary)}
    results["protocol"] = asdict(protocol)
    results["counts"] = dict(summary["counts"])
    if "scale_ratio" in summary:
        results["scale_ratio"] = {key: dict(value) for key, value in summary["scale_ratio"].items()}
    if extra is not None:
        results["extra"] = dict(extra)
    _check_finite(results, "results")

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` written by :func:`write_results`.

    ``EvalProtocol(**results["protocol"])`` rebuilds the protocol used.
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"results file not found: {src}")
    try:
        results = json.loads(src.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{src} is not valid JSON: {exc}") from exc
    if not isinstance(results, dict):
        raise ValueError(f"{src}: expected a JSON object at top level, got {type(results).__name__}")
    missing = [key for key in ("protocol", "counts", ALL_CONDITION) if key not in results]
    if missing:
        raise ValueError(f"{src} is not a robustdepth results file: missing key(s) {missing}")
    for condition in condition_names(results):
        absent = [metric for metric in METRIC_NAMES if metric not in results[condition]]
        if absent:
            raise ValueError(f"{src}: condition {condition!r} lacks metric(s) {absent}")
    return results


__all__ = [
    "ALL_CONDITION",
    "RESERVED_KEYS",
    "DepthEvaluator",
    "condition_names",
    "crop_mask",
    "eigen_crop_mask",
    "evaluate_frame",
    "garg_crop_mask",
    "load_results",
    "post_process_disparity",
    "resize_prediction",
    "valid_mask",
    "write_results",
]
