"""robustdepth.bench.stats: the paired two-stage bootstrap of the methods table, on constructed per-frame data.

Pins: pairing by (seed, frame name) with frames shared across conditions; the estimator against an explicit
resampling loop with the same draws; a known shift is resolved (both signs), zero shift is not; pairing is
what resolves a small shift under large frame-to-frame spread (an unpaired bootstrap of the same data does
not); seed noise widens the interval; the adverse mean is the mean of the adverse conditions.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustdepth.bench.stats import (
    ADVERSE,
    ADVERSE_MEAN,
    BETTER,
    CONDITIONS,
    UNRESOLVED,
    WORSE,
    compare,
    condition_means,
    difference_array,
    frame_identity,
    paired_bootstrap,
    paired_units,
    resample_counts,
    verdict,
)


def records(values: np.ndarray, metric: str = "abs_rel") -> list[list[dict]]:
    """values[s, f, c] → per-seed lists of frame records named as the evaluation runner names them."""
    out = []
    for s in range(values.shape[0]):
        seed = []
        for f in range(values.shape[1]):
            for j, cond in enumerate(CONDITIONS):
                seed.append({"name": f"seq{f % 3:02d}/{cond}/{f:06d}", "condition": cond, metric: values[s, f, j]})
        out.append(seed)
    return out


def world(seeds: int = 3, frames: int = 60, seed: int = 1, spread: float = 0.1) -> np.ndarray:
    """Baseline AbsRel with a large frame-to-frame spread, a per-condition offset and a little seed noise."""
    rng = np.random.default_rng(seed)
    difficulty = 0.25 + spread * rng.standard_normal((1, frames, 1))
    offsets = np.array([0.0, 0.05, 0.03, 0.04, 0.06])[None, None, :]
    return difficulty + offsets + 0.001 * rng.standard_normal((seeds, frames, len(CONDITIONS)))


def test_frame_identity_drops_the_condition() -> None:
    assert frame_identity("seq01/night/000012", "night") == "seq01/000012"
    assert frame_identity("frame_000003", "fog") == "frame_000003"


def test_differences_are_paired_by_seed_and_frame_name() -> None:
    base = world(seeds=2, frames=4)
    shift = np.arange(2 * 4 * 5, dtype=float).reshape(2, 4, 5) / 1000
    method = records(base + shift)
    method[1] = method[1][::-1]  # record order must not matter: frames are matched by name
    d, ids = difference_array(method, records(base))
    assert ids == sorted(f"seq{f % 3:02d}/{f:06d}" for f in range(4))
    order = [int(i.split("/")[1]) for i in ids]
    np.testing.assert_allclose(d, shift[:, order, :], atol=1e-12)
    # a frame the baseline lacks is missing (NaN), never paired with another frame
    baseline = records(base)
    baseline[0] = [r for r in baseline[0] if r["name"] != "seq00/fog/000000"]
    d, ids = difference_array(method, baseline)
    assert np.isnan(d[0, ids.index("seq00/000000"), CONDITIONS.index("fog")]) and np.isfinite(d).sum() == 39
    # a one-seed baseline (the teacher) pairs with every seed of the method
    d1, _ = difference_array(method, records(base[:1]))
    np.testing.assert_allclose(d1[1], (base[1] + shift[1] - base[0])[order], atol=1e-12)
    with pytest.raises(ValueError, match="paired seeds"):
        difference_array(records(base), records(world(seeds=3, frames=4)))


def test_estimator_matches_an_explicit_resampling_loop() -> None:
    rng = np.random.default_rng(3)
    d = rng.standard_normal((3, 7, 5))
    d[1, 2, 4] = np.nan
    draws = np.random.default_rng(11)
    seed_w, frame_w = resample_counts(draws, 3, 50), resample_counts(draws, 7, 50)
    fast = condition_means(d, seed_w, frame_w)
    again = np.random.default_rng(11)
    seed_idx, frame_idx = again.integers(0, 3, size=(50, 3)), again.integers(0, 7, size=(50, 7))
    for b in range(50):
        cells = d[seed_idx[b]][:, frame_idx[b], :]  # the drawn seeds × the drawn frames, with repeats
        np.testing.assert_allclose(fast[b], np.nanmean(cells.reshape(-1, 5), axis=0), atol=1e-12)


def test_known_shift_is_resolved_and_zero_shift_is_not() -> None:
    base = world()
    noise = 0.002 * np.random.default_rng(5).standard_normal(base.shape)
    better = compare(records(base - 0.01 + noise), records(base), replicates=1000)["effects"]
    worse = compare(records(base + 0.01 + noise), records(base), replicates=1000)["effects"]
    same = compare(records(base + noise), records(base), replicates=1000)["effects"]
    for cond in (*CONDITIONS, ADVERSE_MEAN):
        assert better[cond]["verdict"] == BETTER and worse[cond]["verdict"] == WORSE
        assert better[cond]["low"] < better[cond]["mean"] < better[cond]["high"] < 0
        assert abs(better[cond]["mean"] + 0.01) < 0.002
        assert same[cond]["verdict"] == UNRESOLVED and same[cond]["low"] < 0 < same[cond]["high"]


def test_interval_width_matches_the_normal_approximation() -> None:
    """One seed, independent frames: the percentile interval ≈ mean ± 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(7)
    d = 0.003 + 0.02 * rng.standard_normal((1, 400, 5))
    effects = paired_bootstrap(d, replicates=4000)
    for j, cond in enumerate(CONDITIONS):
        half = 1.96 * d[0, :, j].std(ddof=1) / np.sqrt(400)
        e = effects[cond]
        assert e.mean == pytest.approx(d[0, :, j].mean(), abs=1e-12)
        assert (e.high - e.low) / 2 == pytest.approx(half, rel=0.12)


def test_pairing_resolves_what_an_unpaired_bootstrap_cannot() -> None:
    base = world(seeds=3, frames=60, spread=0.1)
    method = base - 0.005 + 0.001 * np.random.default_rng(9).standard_normal(base.shape)
    paired = compare(records(method), records(base), replicates=1000)["effects"][ADVERSE_MEAN]
    assert paired["verdict"] == BETTER
    # unpaired, computed independently: resample each row's frames on their own, difference of adverse means
    rng = np.random.default_rng(0)
    adverse = [CONDITIONS.index(c) for c in ADVERSE]
    diffs = []
    for _ in range(1000):
        fa, fb = rng.integers(0, 60, 60), rng.integers(0, 60, 60)
        diffs.append(method[:, fa][:, :, adverse].mean() - base[:, fb][:, :, adverse].mean())
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert verdict(low, high) == UNRESOLVED and high - low > 5 * (paired["high"] - paired["low"])


def test_seed_noise_widens_the_interval() -> None:
    """A shift that seeds disagree on (one seed better, one worse) is not resolved however many frames agree."""
    base = world(seeds=3, frames=60)
    per_seed = np.array([-0.02, 0.015, -0.001])[:, None, None]
    effects = compare(records(base + per_seed), records(base), replicates=1000)["effects"]
    assert all(effects[c]["verdict"] == UNRESOLVED for c in (*CONDITIONS, ADVERSE_MEAN))
    assert effects["clear"]["low"] < -0.01 and effects["clear"]["high"] > 0.01


def test_adverse_mean_is_the_mean_of_the_adverse_conditions() -> None:
    d = np.zeros((2, 10, 5))
    d[..., CONDITIONS.index("night")] = -0.04  # only night changed: the adverse mean is a quarter of it
    d += 1e-4 * np.random.default_rng(2).standard_normal(d.shape)
    effects = paired_bootstrap(d, replicates=500)
    assert effects[ADVERSE_MEAN].mean == pytest.approx(np.mean([effects[c].mean for c in ADVERSE]), abs=1e-12)
    assert effects[ADVERSE_MEAN].mean == pytest.approx(-0.01, abs=1e-4)
    assert effects["night"].verdict == BETTER and effects[ADVERSE_MEAN].verdict == BETTER


def test_higher_is_better_metrics_flip_the_verdict_and_bad_input_is_named() -> None:
    assert verdict(-0.2, -0.1) == BETTER and verdict(-0.2, -0.1, lower_is_better=False) == WORSE
    assert verdict(0.1, 0.2, lower_is_better=False) == BETTER and verdict(-0.1, 0.1) == UNRESOLVED
    with pytest.raises(ValueError, match="expected"):
        paired_bootstrap(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(np.zeros((1, 3, 5)), level=95)


def test_paired_units_is_the_method_minus_baseline_effect_of_shared_units() -> None:
    """Per-unit arrays (frames or pose snippets shared by both sides): the point estimate is the mean of
    method − baseline, a shift far below the unit spread is resolved because units are paired, and swapping
    the sides negates the effect and flips the verdict."""
    rng = np.random.default_rng(5)
    base = 1.0 + 0.5 * rng.standard_normal((2, 50))  # unit difficulty ≫ the effect
    method = base - 0.02 + 0.002 * rng.standard_normal((2, 50))
    effect = paired_units(method, base)
    assert effect.mean == pytest.approx(float(np.mean(method - base)), abs=1e-12)
    assert effect.high < 0 and effect.verdict == BETTER
    swapped = paired_units(base, method)
    assert swapped.mean == pytest.approx(-effect.mean, abs=1e-12) and swapped.verdict == WORSE
    assert paired_units(base, base).verdict == UNRESOLVED
    with pytest.raises(ValueError, match="paired units"):
        paired_units(method, base[:, :10])
