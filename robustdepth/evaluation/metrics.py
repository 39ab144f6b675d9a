"""The seven standard depth metrics, computed exactly as Monodepth2's ``compute_errors``.

Reference: nianticlabs/monodepth2 ``evaluate_depth.py::compute_errors`` (the same maths is in md4all's
``utils/depth.py::compute_depth_metrics`` and WeatherDepth's ``Evaluate.py``). The inputs are the *already
masked* 1-D arrays of ground-truth and predicted depth of one image; averaging over images (the "per-image
mean" every paper reports) happens one level up, in :class:`robustdepth.evaluation.DepthEvaluator`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# δ thresholds: a pixel counts when max(gt/pred, pred/gt) is *strictly* below 1.25**k (MD2 uses `<`).
DELTA_BASE = 1.25


def to_numpy_float64(values: Any, what: str) -> np.ndarray:
    """Return ``values`` (numpy array, torch tensor or sequence) as a float64 numpy array.

    float64 keeps the sums of ~10^5 pixels exact to well below the 3rd-4th decimal that papers print.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, without importing torch
        values = values.detach().cpu().double().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a numeric array or tensor, got {type(values).__name__}") from exc


def _check_depth_vector(values: np.ndarray, what: str) -> None:
    """Raise if ``values`` is not a non-empty 1-D array of finite, strictly positive depths."""
    if values.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of masked depths, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} is empty: no valid pixels to evaluate")
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} must be finite and > 0 (log and ratios are taken); {int(bad.sum())} bad value(s), "
            f"first at index {first}: {values[first]!r}"
        )


def compute_depth_errors(gt: Any, pred: Any) -> dict[str, float]:
    """Compute ``abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3`` for one image (Monodepth2's formulas).

    Args:
        gt: ground-truth depths of the valid pixels, 1-D (numpy or torch), metres.
        pred: predicted depths of the same pixels, already scaled and clamped, same shape as ``gt``.

    Returns:
        ``{name: value}`` for every name in :data:`METRIC_NAMES`, as Python floats computed in float64.
    """
    gt64 = to_numpy_float64(gt, "gt")
    pred64 = to_numpy_float64(pred, "pred")
    if gt64.shape != pred64.shape:
        raise ValueError(f"gt and pred must have the same shape, got gt {gt64.shape} and pred {pred64.shape}")
    _check_depth_vector(gt64, "gt")
    _check_depth_vector(pred64, "pred")

    thresh = np.maximum(gt64 / pred64, pred64 / gt64)
    diff = gt64 - pred64
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt64)),
        "sq_rel": float(np.mean(diff**2 / gt64)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt64) - np.log(pred64)) ** 2))),
        "a1": float(np.mean(thresh < DELTA_BASE)),
        "a2": float(np.mean(thresh < DELTA_BASE**2)),
        "a3": float(np.mean(thresh < DELTA_BASE**3)),
    }
