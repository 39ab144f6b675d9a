"""RoboDepth KITTI-C corruptions (robustdepth.evaluation.corruptions) and scoring (…robodepth)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustdepth.evaluation import corruptions as C
from robustdepth.evaluation import robodepth as R

KITTI_DIR = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "kitti_raw_seq_demo_slam"

ROBODEPTH_NAMES = (
    "brightness", "dark", "fog", "frost", "snow", "contrast",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "elastic_transform", "color_quant",
    "gaussian_noise", "impulse_noise", "shot_noise", "iso_noise", "pixelate", "jpeg_compression",
)  # fmt: skip


def synthetic_image(height: int = 96, width: int = 160, seed: int = 3) -> np.ndarray:
    """Mid-grey road-like scene with edges and texture, so blurs, noise and colour ops all act on it."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 60 + 100 * (yy / height)[..., None] * np.array([1.0, 0.9, 0.8])
    stripes = 40.0 * (((xx // 12) + (yy // 12)) % 2)[..., None]
    texture = rng.uniform(-20, 20, size=(height, width, 3))
    return np.clip(base + stripes + texture, 0, 255).astype(np.uint8)


def kitti_crop() -> np.ndarray:
    frames = sorted(KITTI_DIR.rglob("*.png"))
    if not frames:
        pytest.skip(f"real KITTI frames not found under {KITTI_DIR}")
    image = np.asarray(Image.open(frames[0]).convert("RGB"))
    top, left = image.shape[0] // 2 - 64, image.shape[1] // 2 - 128
    return np.ascontiguousarray(image[top : top + 128, left : left + 256])


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# --------------------------------------------------------------------------------------------------
# Corruptions
# --------------------------------------------------------------------------------------------------


def test_names_match_robodepth() -> None:
    assert C.CORRUPTIONS == ROBODEPTH_NAMES
    assert len(C.CORRUPTIONS) == 18
    own = {n for n in C.CORRUPTIONS if C.corruption_source(n) == "robodepth"}
    assert own == {"dark", "color_quant", "iso_noise"}


def _check_severity_effect(image: np.ndarray, name: str) -> None:
    mild = C.corrupt(image, name, 1, seed=11)
    strong = C.corrupt(image, name, 5, seed=11)
    for out in (mild, strong):
        assert out.shape == image.shape and out.dtype == np.uint8
    d1, d5 = mean_abs_diff(mild, image), mean_abs_diff(strong, image)
    assert d1 > 0.5, f"{name} severity 1 barely changed the image ({d1:.2f})"
    assert d5 > d1, f"{name}: severity 5 changed the image less ({d5:.2f}) than severity 1 ({d1:.2f})"


@pytest.mark.parametrize("name", ROBODEPTH_NAMES)
def test_corruption_on_synthetic_image(name: str) -> None:
    _check_severity_effect(synthetic_image(), name)


@pytest.mark.realdata
@pytest.mark.parametrize("name", ROBODEPTH_NAMES)
def test_corruption_on_real_kitti_crop(name: str) -> None:
    _check_severity_effect(kitti_crop(), name)


@pytest.mark.parametrize("size", [(192, 640), (375, 1242)])
def test_every_corruption_keeps_non_square_kitti_sizes(size: tuple[int, int]) -> None:
    image = synthetic_image(*size)
    # glass blur is a per-pixel Python loop (~7 s at 375x1242); its size handling is the same at 192x640
    names = [n for n in C.CORRUPTIONS if not (n == "glass_blur" and size[0] > 192)]
    for name in names:
        out = C.corrupt(image, name, 5, seed=0)
        assert out.shape == image.shape and out.dtype == np.uint8, name


def test_seed_makes_corruptions_reproducible_and_leaves_global_rng_alone() -> None:
    image = synthetic_image(64, 96)
    np.random.seed(123)
    state_before = np.random.get_state()[1].copy()
    for name in C.CORRUPTIONS:
        first = C.corrupt(image, name, 3, seed=7)
        np.testing.assert_array_equal(first, C.corrupt(image, name, 3, seed=7), err_msg=name)
    np.testing.assert_array_equal(np.random.get_state()[1], state_before)
    for name in ("gaussian_noise", "impulse_noise", "dark", "iso_noise", "frost", "snow"):
        assert not np.array_equal(C.corrupt(image, name, 3, seed=7), C.corrupt(image, name, 3, seed=8)), name


def test_color_quant_keeps_robodepth_bit_depths() -> None:
    image = synthetic_image()
    for severity, bits in zip(C.SEVERITIES, (5, 4, 3, 2, 1)):
        out = C.corrupt(image, "color_quant", severity)
        low_bits = (1 << (8 - bits)) - 1
        assert not np.any(out & low_bits), f"severity {severity} kept more than {bits} bits"
        assert np.array_equal(out, image & ~np.uint8(low_bits))  # posterize = drop the low bits


def test_dark_compresses_to_robodepth_peak_and_adds_noise() -> None:
    image = synthetic_image()
    for severity, peak in zip(C.SEVERITIES, (0.6, 0.5, 0.4, 0.3, 0.2)):
        out = C.corrupt(image, "dark", severity, seed=1).astype(np.float64) / 255
        # brightest pixel maps to `peak`; noise (std <= 0.038 + shot noise) rarely pushes 1 % beyond +0.1
        assert np.percentile(out, 99) < peak + 0.1
        assert out.mean() < image.mean() / 255 * peak + 0.05
    # a constant image has no range to stretch (RoboDepth: 0/0): black here, plus the std-0.008 noise
    flat = C.corrupt(np.full((64, 64, 3), 128, np.uint8), "dark", 1, seed=0)
    assert flat.mean() < 2.0 and flat.max() < 16


def test_iso_noise_is_unbiased_and_grows_with_severity() -> None:
    image = np.full((128, 128, 3), 128, np.uint8)
    spreads = []
    for severity in C.SEVERITIES:
        out = C.corrupt(image, "iso_noise", severity, seed=2).astype(np.float64)
        assert abs(out.mean() - 127.5) < 4.0  # Poisson + zero-mean Gaussian, uint8 truncation ~ -0.5
        spreads.append(out.std())
    assert all(b > a for a, b in itertools.pairwise(spreads)), spreads
    # at severity 1 the 25-photon shot noise dominates: std ~ 255 * sqrt(0.5 / 25 + 0.056**2) ~ 38
    assert 30 < spreads[0] < 46


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((synthetic_image(), "rain", 1), ValueError, "unknown corruption 'rain'"),
        ((synthetic_image(), "fog", 0), ValueError, "severity"),
        ((synthetic_image(), "fog", 6), ValueError, "severity"),
        ((synthetic_image(), "fog", True), ValueError, "severity"),
        ((synthetic_image(), "fog", 2.0), ValueError, "severity"),
        ((synthetic_image().astype(np.float32), "fog", 1), TypeError, "uint8"),
        ((synthetic_image()[..., 0], "fog", 1), ValueError, "H x W x 3"),
        ((np.zeros((64, 64, 4), np.uint8), "fog", 1), ValueError, "H x W x 3"),
        ((np.zeros((16, 64, 3), np.uint8), "fog", 1), ValueError, "at least 32"),
        (([[1, 2, 3]], "fog", 1), TypeError, "numpy array"),
    ],
)
def test_bad_inputs_raise_clear_errors(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        C.corrupt(*args)


def test_resize_for_kitti_c() -> None:
    out = C.resize_for_kitti_c(synthetic_image(375, 1242))
    assert out.shape == (192, 640, 3) and out.dtype == np.uint8


# --------------------------------------------------------------------------------------------------
# Scoring maths, hand-worked
# --------------------------------------------------------------------------------------------------


def test_dee_formula_and_units() -> None:
    assert R.dee(0.115, 0.877) == pytest.approx(0.119)  # (0.115 - 0.877 + 1) / 2 = 0.238 / 2
    assert R.dee(0.0, 1.0) == 0.0  # perfect prediction
    assert R.dee(0.5, 0.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="fraction"):
        R.dee(0.115, 87.7)  # delta1 given in percent
    with pytest.raises(ValueError, match="abs_rel"):
        R.dee(float("nan"), 0.9)


def test_ce_mce_rr_mrr_hand_worked() -> None:
    # model, clean:  abs_rel 0.10, a1 0.90 -> DEE = (0.10 - 0.90 + 1) / 2 = 0.10
    clean = {"abs_rel": 0.10, "a1": 0.90}
    # model, fog (abs_rel, a1) -> DEE per severity 1..5:
    #   (0.10,0.80)->0.15 (0.20,0.80)->0.20 (0.20,0.70)->0.25 (0.30,0.70)->0.30 (0.30,0.60)->0.35
    fog = {1: (0.10, 0.80), 2: (0.20, 0.80), 3: (0.20, 0.70), 4: (0.30, 0.70), 5: (0.30, 0.60)}
    # model, dark:  every severity (0.05, 0.95) -> 0.05
    model = {
        "fog": {s: {"abs_rel": a, "a1": d} for s, (a, d) in fog.items()},
        "dark": {s: {"abs_rel": 0.05, "a1": 0.95} for s in range(1, 6)},
    }
    # reference: fog (0.10, 0.70) -> 0.20 at every severity; dark (0.50, 0.50) -> 0.50; clean -> 0.10
    reference = {
        "name": "toy_ref",
        "clean": {"abs_rel": 0.10, "a1": 0.90},
        "corruptions": {
            "fog": {s: {"abs_rel": 0.10, "a1": 0.70} for s in range(1, 6)},
            "dark": {s: {"abs_rel": 0.50, "a1": 0.50} for s in range(1, 6)},
        },
    }
    # CE_fog  = (0.15+0.20+0.25+0.30+0.35) / (5 * 0.20) = 1.25 / 1.00 = 1.25
    # CE_dark = (5 * 0.05) / (5 * 0.50) = 0.25 / 2.50 = 0.10
    # mCE     = (1.25 + 0.10) / 2 = 0.675
    # RR_fog  = (0.85+0.80+0.75+0.70+0.65) / (5 * (1 - 0.10)) = 3.75 / 4.5 = 0.8333...
    # RR_dark = (5 * 0.95) / 4.5 = 4.75 / 4.5 = 1.0555...
    # mRR     = (3.75 + 4.75) / 2 / 4.5 = 8.5 / 9 = 0.9444...
    fog_dee = {s: R.dee(a, d) for s, (a, d) in fog.items()}
    assert list(fog_dee.values()) == pytest.approx([0.15, 0.20, 0.25, 0.30, 0.35])
    assert R.corruption_error(fog_dee, {s: 0.20 for s in range(1, 6)}) == pytest.approx(1.25)
    assert R.resilience_rate(fog_dee, 0.10) == pytest.approx(3.75 / 4.5)
    assert R.mce({"fog": 1.25, "dark": 0.10}) == pytest.approx(0.675)
    assert R.mrr({"fog": 3.75 / 4.5, "dark": 4.75 / 4.5}) == pytest.approx(8.5 / 9)

    scores = R.score_results(model, clean, reference, name="toy")
    assert list(scores["corruptions"]) == ["dark", "fog"]  # RoboDepth's order, not the input's
    assert scores["clean"]["dee"] == pytest.approx(0.10)
    assert scores["corruptions"]["fog"]["dee_mean"] == pytest.approx(0.25)
    assert scores["corruptions"]["fog"]["ce"] == pytest.approx(1.25)
    assert scores["corruptions"]["dark"]["ce"] == pytest.approx(0.10)
    assert scores["corruptions"]["dark"]["rr"] == pytest.approx(4.75 / 4.5)
    assert scores["mce"] == pytest.approx(0.675)
    assert scores["mrr"] == pytest.approx(8.5 / 9)
    assert scores["complete"] is False and scores["ce_skipped"] == []

    table = R.format_corruption_table(scores)
    assert "mCE = 67.50 %" in table and "mRR = 94.44 %" in table
    assert "| fog | 0.150 | 0.200 | 0.250 | 0.300 | 0.350 | 0.250 | 0.200 | 125.00 | 83.33 |" in table


def test_scoring_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="same severities"):
        R.corruption_error({1: 0.2, 2: 0.3}, {1: 0.2})
    reference = R.load_reference()
    with pytest.raises(ValueError, match="unknown corruption"):
        R.score_results({"rain": {1: {"abs_rel": 0.1, "a1": 0.9}}}, {"abs_rel": 0.1, "a1": 0.9}, reference)
    with pytest.raises(KeyError, match="a1"):
        R.score_results({"fog": {1: {"abs_rel": 0.1}}}, {"abs_rel": 0.1, "a1": 0.9}, reference)
    with pytest.raises(ValueError, match="unknown reference"):
        R.load_reference("monodepth3")
    with pytest.raises(FileNotFoundError, match=re.escape("nope.json")):
        R.load_reference("nope.json")


# --------------------------------------------------------------------------------------------------
# Shipped reference
# --------------------------------------------------------------------------------------------------


def test_shipped_reference_reproduces_robodepth_published_numbers() -> None:
    reference = R.load_reference("monodepth2_r18")
    assert set(reference["corruptions"]) == set(ROBODEPTH_NAMES)
    assert all(sorted(v) == [1, 2, 3, 4, 5] for v in reference["corruptions"].values())
    assert "ldkong1205/RoboDepth" in json.dumps(reference["source"])
    assert R.dee(reference["clean"]["abs_rel"], reference["clean"]["a1"]) == pytest.approx(0.119, abs=5e-4)
    scores = R.score_results(reference["corruptions"], reference["clean"], reference, name="md2")
    assert scores["complete"] is True
    assert scores["mce"] == pytest.approx(1.0)  # the baseline's own mCE is 100 %
    assert scores["mrr"] == pytest.approx(0.8446, abs=5e-4)  # RoboDepth README: mRR 84.46 %
    published = reference["published"]["dee_mean"]
    for name, entry in scores["corruptions"].items():  # per-severity transcription vs published means
        assert entry["dee_mean"] == pytest.approx(published[name], abs=1.1e-3), name


def test_results_json_round_trips_as_reference_and_plot(tmp_path: Path) -> None:
    reference = R.load_reference()
    worse = {
        c: {s: {**m, "abs_rel": m["abs_rel"] * 1.5} for s, m in by_sev.items()}
        for c, by_sev in reference["corruptions"].items()
    }
    scores = R.score_results(worse, reference["clean"], reference, name="worse")
    assert scores["mce"] > 1.0 and scores["mrr"] < 0.8446
    path = R.save_scores(scores, tmp_path / "worse.json")
    as_reference = R.load_reference(str(path))
    assert as_reference["name"] == "worse"
    rescored = R.score_results(worse, reference["clean"], as_reference)
    assert rescored["mce"] == pytest.approx(1.0)
    png = R.plot_dee_vs_severity(json.loads(path.read_text()), tmp_path / "dee.png")
    with Image.open(png) as plot:
        assert plot.size[0] > 800 and plot.size[1] > 400


# --------------------------------------------------------------------------------------------------
# Running a model over the corruptions
# --------------------------------------------------------------------------------------------------


def brightness_depth(image: np.ndarray) -> np.ndarray:
    """Toy 'model': depth 1-11 m from the image's grey level (so it is exact on the clean frame)."""
    return 1.0 + image.astype(np.float64).mean(axis=2) / 25.5


def abs_rel_and_a1(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    ratio = np.maximum(gt / pred, pred / gt)
    return {"abs_rel": float(np.mean(np.abs(gt - pred) / gt)), "a1": float(np.mean(ratio < 1.25))}


def test_run_corruption_benchmark_toy_model() -> None:
    images = [synthetic_image(64, 96, seed=s) for s in (1, 2)]
    frames = [(image, brightness_depth(image)) for image in images]  # perfect on clean frames
    kwargs = dict(corruptions=("gaussian_noise", "contrast"), severities=(1, 5), progress=False, seed=0)
    result = R.run_corruption_benchmark(brightness_depth, frames, abs_rel_and_a1, **kwargs)

    assert result["num_frames"] == 2
    assert set(result["per_corruption"]) == {"gaussian_noise", "contrast"}
    assert all(set(by_sev) == {1, 5} for by_sev in result["per_corruption"].values())
    assert result["clean"] == {"abs_rel": 0.0, "a1": 1.0}
    scores = R.score_results(result["per_corruption"], result["clean"], R.load_reference(), name="toy")
    assert scores["clean"]["dee"] == 0.0
    for name, entry in scores["corruptions"].items():
        assert 0.0 < entry["dee"][1] < entry["dee"][5], name  # the corruption hurts, more when stronger
        assert entry["rr"] < 1.0
    again = R.run_corruption_benchmark(brightness_depth, iter(frames), abs_rel_and_a1, **kwargs)
    assert again["per_corruption"] == result["per_corruption"]  # seeded, also from a one-shot iterator


def test_run_corruption_benchmark_rejects_bad_model_output() -> None:
    frames = [(synthetic_image(64, 96), np.ones((64, 96)))]
    with pytest.raises(ValueError, match=re.escape("frame 0 (clean): predict must return an h x w")):
        R.run_corruption_benchmark(lambda im: np.ones((1, 64, 96)), frames, abs_rel_and_a1, progress=False)
    with pytest.raises(ValueError, match=re.escape("a1 (delta1) must be a fraction")):
        R.run_corruption_benchmark(
            brightness_depth, frames, lambda g, p: {"abs_rel": 0.1, "a1": 90.0}, progress=False
        )
    with pytest.raises(ValueError, match="unknown corruption 'haze'"):
        R.run_corruption_benchmark(brightness_depth, frames, abs_rel_and_a1, corruptions=("haze",))
