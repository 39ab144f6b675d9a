"""Paired bootstrap of a method's per-frame metric difference against its baseline, over seeds and frames.

The methods table asks one question per (method, baseline) pair: is the method's AbsRel on a condition
lower, higher, or not distinguishable from its baseline's, given that both were trained with a few seeds
and evaluated on a finite test set? Both sources of noise are resampled, and the comparison is PAIRED:

* **Pairing.** ``d[s, f, c] = metric_method[s, f, c] − metric_baseline[s, f, c]``: the same training seed
  ``s`` (the same data order, jitter and degradation draws for both rows) and the same test frame ``f``
  rendered in condition ``c``. Frame-to-frame difficulty — far larger than any method's effect — cancels
  in ``d``; an unpaired comparison keeps it and cannot resolve small effects (``tests/test_bench_stats.py``).
  A baseline evaluated with one seed only (the protocol's teacher) is paired with every seed of the method.
* **Resampling (two-stage, crossed).** Each replicate draws the seeds with replacement (``S`` of the
  ``S`` seeds), then the frame identities with replacement (``F`` of the ``F`` ``<sequence>/<index>``
  frames). Every seed is evaluated on the same test frames and every frame exists in every condition, so
  ONE frame draw serves all drawn seeds and all conditions (seeds and frames are crossed, not nested): the
  adverse-mean interval then carries the correlation between conditions of one frame. The replicate's
  estimate is the mean of ``d`` over the drawn (seed, frame) cells of each condition; the adverse mean is
  the mean of the adverse conditions' estimates (as :func:`robustdepth.bench.protocol.method_row`).
* **Interval and verdict.** The percentile interval of the replicates at ``level`` (95 %). Lower is
  better for AbsRel: an interval wholly below 0 is *resolved better*, wholly above 0 *resolved worse*,
  else *unresolved*. Neighbouring frames of one sequence are correlated, so frames are not independent
  draws; with few seeds the seed stage is coarse (3 seeds give 10 distinct multisets): the interval is a
  statement about these seeds and this test set, not a guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ADVERSE = ("night", "rain", "fog", "snow")
CONDITIONS = ("clear", *ADVERSE)
ADVERSE_MEAN = "adverse_mean"
BETTER, WORSE, UNRESOLVED = "resolved better", "resolved worse", "unresolved"


@dataclass(frozen=True)
class Effect:
    """A mean paired difference (method − baseline) with its bootstrap interval and verdict."""

    mean: float
    low: float
    high: float
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_identity(name: str, condition: str) -> str:
    """``<sequence>/<condition>/<index>`` → ``<sequence>/<index>``: one frame across its condition renders."""
    parts = name.split("/")
    return "/".join(p for p in parts if p != condition) if condition in parts else name


def difference_array(method: Sequence[Sequence[dict[str, Any]]], baseline: Sequence[Sequence[dict[str, Any]]],
                     metric: str = "abs_rel", conditions: Sequence[str] = CONDITIONS,
                     ) -> tuple[np.ndarray, list[str]]:
    """Paired differences ``d[s, f, c]`` (NaN where a cell is missing) and the frame identities.

    ``method[s]`` / ``baseline[s]``: per-frame records (``name``, ``condition``, ``metric``) of seed ``s``;
    a one-seed baseline is paired with every seed of the method. Frames are matched by name; a frame one
    side lacks is left out (NaN), never matched to another frame.
    """
    if len(baseline) == 1 and len(method) > 1:
        baseline = [baseline[0]] * len(method)
    if len(method) != len(baseline) or not method:
        raise ValueError(f"paired seeds: {len(method)} method seeds against {len(baseline)} baseline seeds")
    tables = [[_by_name(m, metric), _by_name(b, metric)] for m, b in zip(method, baseline, strict=True)]
    ids = sorted({frame_identity(name, cond) for m, _ in tables for name, (cond, _v) in m.items()})
    index = {fid: i for i, fid in enumerate(ids)}
    col = {c: j for j, c in enumerate(conditions)}
    d = np.full((len(tables), len(ids), len(conditions)), np.nan)
    for s, (m, b) in enumerate(tables):
        for name, (cond, value) in m.items():
            if name in b and cond in col:
                d[s, index[frame_identity(name, cond)], col[cond]] = value - b[name][1]
    return d, ids


def _by_name(records: Sequence[dict[str, Any]], metric: str) -> dict[str, tuple[str, float]]:
    return {r["name"]: (r["condition"], float(r[metric])) for r in records}


def resample_counts(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """(replicates, n) multiplicities of ``n`` items drawn ``n`` times with replacement, per replicate."""
    draws = rng.integers(0, n, size=(replicates, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)


def condition_means(d: np.ndarray, seed_w: np.ndarray, frame_w: np.ndarray) -> np.ndarray:
    """Weighted means of ``d[s, f, c]`` per condition for each row of weights: (B, C).

    ``seed_w`` (B, S) and ``frame_w`` (B, F) are resampling multiplicities; missing cells (NaN) carry no
    weight. A condition with no weighted cell in a replicate is NaN there.
    """
    valid = ~np.isnan(d)
    filled = np.where(valid, d, 0.0)
    num = np.einsum("bs,sfc,bf->bc", seed_w, filled, frame_w)
    den = np.einsum("bs,sfc,bf->bc", seed_w, valid.astype(float), frame_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def verdict(low: float, high: float, lower_is_better: bool = True) -> str:
    """*resolved better* / *resolved worse* when the interval excludes 0, else *unresolved*."""
    if high < 0:
        return BETTER if lower_is_better else WORSE
    if low > 0:
        return WORSE if lower_is_better else BETTER
    return UNRESOLVED


def paired_bootstrap(d: np.ndarray, conditions: Sequence[str] = CONDITIONS, replicates: int = 2000,
                     level: float = 0.95, seed: int = 0, lower_is_better: bool = True) -> dict[str, Effect]:
    """Per condition and on the adverse mean: the mean of ``d`` and its two-stage bootstrap interval.

    ``d[s, f, c]`` as :func:`difference_array` makes it. Seeds, then frames are drawn with replacement from
    ``np.random.default_rng(seed)`` (reproducible); see the module docstring for the scheme.
    """
    if d.ndim != 3 or d.shape[2] != len(conditions):
        raise ValueError(f"differences of shape {d.shape}: expected (seeds, frames, {len(conditions)} conditions)")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: a coverage in (0, 1)")
    rng = np.random.default_rng(seed)
    seed_w = resample_counts(rng, d.shape[0], replicates)
    frame_w = resample_counts(rng, d.shape[1], replicates)
    point = condition_means(d, np.ones((1, d.shape[0])), np.ones((1, d.shape[1])))[0]
    boot = condition_means(d, seed_w, frame_w)
    adverse = [j for j, c in enumerate(conditions) if c in ADVERSE and not np.isnan(point[j])]
    columns = {c: j for j, c in enumerate(conditions) if not np.isnan(point[j])}
    tail = 100 * (1 - level) / 2
    effects: dict[str, Effect] = {}
    for name, point_value, samples in [
        *((c, point[j], boot[:, j]) for c, j in columns.items()),
        *([(ADVERSE_MEAN, point[adverse].mean(), boot[:, adverse].mean(axis=1))] if adverse else []),
    ]:
        samples = samples[~np.isnan(samples)]
        low, high = np.percentile(samples, [tail, 100 - tail])
        effects[name] = Effect(float(point_value), float(low), float(high),
                               verdict(float(low), float(high), lower_is_better))
    return effects


def paired_units(method: np.ndarray, baseline: np.ndarray, replicates: int = 2000, level: float = 0.95,
                 seed: int = 0, lower_is_better: bool = True) -> Effect:
    """One paired effect (method − baseline) from ``(seeds, units)`` arrays of a metric, where unit ``u`` of seed
    ``s`` is the same test item for both sides (a test frame, a pose snippet): the two-stage bootstrap of
    :func:`paired_bootstrap` with a single condition. NaN marks a unit one side lacks."""
    method, baseline = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
    if method.ndim != 2 or method.shape != baseline.shape:
        raise ValueError(f"paired units: method {method.shape} and baseline {baseline.shape} must be equal "
                         "(seeds, units) arrays")
    return paired_bootstrap((method - baseline)[:, :, None], ("all",), replicates, level, seed,
                            lower_is_better)["all"]


def compare(method: Sequence[Sequence[dict[str, Any]]], baseline: Sequence[Sequence[dict[str, Any]]],
            metric: str = "abs_rel", replicates: int = 2000, level: float = 0.95, seed: int = 0,
            ) -> dict[str, Any]:
    """One method-vs-baseline comparison from per-frame records (seed-paired lists): effects per condition
    and on the adverse mean, and how many seeds and frame identities entered."""
    d, ids = difference_array(method, baseline, metric)
    effects = paired_bootstrap(d, CONDITIONS, replicates, level, seed, lower_is_better=metric != "a1")
    return {"metric": metric, "seeds": int(d.shape[0]), "frames": len(ids), "replicates": replicates,
            "level": level, "effects": {k: e.as_dict() for k, e in effects.items()}}
