"""Tests of robustdepth.evaluation: MD2-exact metrics, protocols, frame evaluation, aggregation, reports."""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from robustdepth.evaluation import (
    METRIC_NAMES,
    PROTOCOLS,
    DepthEvaluator,
    EvalProtocol,
    adverse_mean,
    compute_depth_errors,
    evaluate_frame,
    format_table,
    get_protocol,
    load_results,
    post_process_disparity,
    write_results,
)
from robustdepth.evaluation.evaluate import (
    eigen_crop_mask,
    garg_crop_mask,
    resize_prediction,
)
from robustdepth.evaluation.protocols import MD4ALL_CONDITION_GROUPS
from robustdepth.evaluation.report import plot_metric_bars, print_table

# ------------------------------------------------------------------------------------------ metrics

# gt = [1, 2, 4], pred = [1, 2.5, 2]
#   max(gt/pred, pred/gt) = [1, 1.25, 2]
#   a1: < 1.25     -> [yes, NO (1.25 is not < 1.25), no]  = 1/3
#   a2: < 1.5625   -> [yes, yes, no]                      = 2/3
#   a3: < 1.953125 -> [yes, yes, no (2 > 1.953125)]       = 2/3
#   |gt - pred| / gt   = [0, 0.5/2, 2/4] = [0, 0.25, 0.5]   -> abs_rel = 0.75 / 3 = 0.25
#   (gt - pred)^2 / gt = [0, 0.25/2, 4/4] = [0, 0.125, 1]   -> sq_rel  = 1.125 / 3 = 0.375
#   (gt - pred)^2      = [0, 0.25, 4]                       -> rmse    = sqrt(4.25 / 3) = 1.1902380714...
#   log gt - log pred  = [0, log(2/2.5) = log 0.8, log(4/2) = log 2]
#                                                   -> rmse_log = sqrt((log(0.8)^2 + log(2)^2) / 3)
#                                                      = sqrt((0.0497929 + 0.4804530) / 3) = 0.4204145...
HAND_GT = [1.0, 2.0, 4.0]
HAND_PRED = [1.0, 2.5, 2.0]
HAND_EXPECTED = {
    "abs_rel": 0.25,
    "sq_rel": 0.375,
    "rmse": math.sqrt(4.25 / 3),
    "rmse_log": math.sqrt((math.log(0.8) ** 2 + math.log(2.0) ** 2) / 3),
    "a1": 1 / 3,
    "a2": 2 / 3,
    "a3": 2 / 3,
}


def test_metrics_match_hand_computed_values() -> None:
    errors = compute_depth_errors(np.array(HAND_GT), np.array(HAND_PRED))
    assert tuple(errors) == METRIC_NAMES
    for name, expected in HAND_EXPECTED.items():
        assert errors[name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name
    assert HAND_EXPECTED["rmse"] == pytest.approx(1.1902380714)
    assert HAND_EXPECTED["rmse_log"] == pytest.approx(0.4204145, rel=1e-6)


def test_metrics_accept_torch_and_float32_and_compute_in_float64() -> None:
    from_torch = compute_depth_errors(torch.tensor(HAND_GT), torch.tensor(HAND_PRED, dtype=torch.float32))
    for name, expected in HAND_EXPECTED.items():
        assert from_torch[name] == pytest.approx(expected, rel=1e-12), name
        assert isinstance(from_torch[name], float)


def test_delta_thresholds_are_strict_at_the_boundary() -> None:
    # Ratios exactly 1.25, 1.25^2 = 1.5625 and 1.25^3 = 1.953125 (exact in binary): none counts for its own δ.
    gt = np.array([1.25, 1.0, 1.0])
    pred = np.array([1.0, 1.5625, 1.953125])  # gt/pred = 1.25 (gt above), pred/gt = 1.5625, 1.953125
    errors = compute_depth_errors(gt, pred)
    assert errors["a1"] == 0.0  # 1.25 !< 1.25, and the others are larger
    assert errors["a2"] == pytest.approx(1 / 3)  # only 1.25 < 1.5625
    assert errors["a3"] == pytest.approx(2 / 3)  # 1.25 and 1.5625 < 1.953125, 1.953125 is not
    just_inside = compute_depth_errors(np.array([1.0]), np.array([np.nextafter(1.25, 0.0)]))
    assert just_inside["a1"] == 1.0


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        ([], [], "empty"),
        ([1.0, 2.0], [1.0], "same shape"),
        ([1.0, 0.0], [1.0, 1.0], "gt must be finite and > 0"),
        ([1.0, 2.0], [1.0, -2.0], "pred must be finite and > 0"),
        ([1.0, np.nan], [1.0, 1.0], "gt must be finite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
    ],
)
def test_metrics_reject_bad_inputs(gt: list, pred: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_depth_errors(np.array(gt), np.array(pred))


# -------------------------------------------------------------------------------------------- crops


def test_garg_crop_on_kitti_frame_matches_md2_integer_box() -> None:
    # MD2: int32([0.40810811*375, 0.99189189*375, 0.03594771*1242, 0.96405229*1242])
    #    = int32([153.04, 371.96, 44.65, 1197.35]) = [153, 371, 44, 1197];
    # MD2's trainer hard-codes the same box, 153:371, 44:1197, for its 375x1242 validation.
    mask = garg_crop_mask(375, 1242)
    expected = np.zeros((375, 1242), dtype=bool)
    expected[153:371, 44:1197] = True
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == (371 - 153) * (1197 - 44)


def test_eigen_crop_box_on_kitti_frame() -> None:
    # int32([0.3324324*375, 0.91351351*375, 0.0359477*1242, 0.96405229*1242]) = [124, 342, 44, 1197]
    mask = eigen_crop_mask(375, 1242)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (124, 342, 44, 1197)


# ----------------------------------------------------------------------------------- frame protocol


def _smooth_depth(height: int, width: int, low: float, high: float) -> np.ndarray:
    """A smooth positive depth field (a tilted plane with a bump), values in [low, high]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    field = 0.6 * xx / width + 0.3 * (1 - yy / height) + 0.1 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    field = (field - field.min()) / (field.max() - field.min())
    return low + (high - low) * field


def test_median_scaling_cancels_a_constant_factor_only_under_kitti_eigen() -> None:
    gt = _smooth_depth(60, 200, 2.0, 70.0)
    gt[::7, ::3] = 0.0  # sparse-LiDAR-like holes are invalid
    pred = 0.3 * _smooth_depth(60, 200, 2.0, 70.0)  # right shape, wrong scale

    eigen = evaluate_frame(gt, pred, get_protocol("kitti_eigen"))
    assert eigen["abs_rel"] < 1e-12
    assert eigen["a1"] == 1.0
    assert eigen["ratio"] == pytest.approx(1 / 0.3)

    # md4all protocol: no GT scaling, so the error is the factor itself: |gt - 0.3 gt| / gt = 0.7.
    md4all = evaluate_frame(gt, pred, get_protocol("nuscenes_md4all"))
    assert md4all["abs_rel"] == pytest.approx(0.7)
    assert md4all["a3"] == 0.0  # ratio 1/0.3 = 3.33 > 1.25^3
    assert md4all["ratio"] == 1.0


def test_stereo_protocol_multiplies_by_fixed_5_4_and_does_not_adapt() -> None:
    gt = _smooth_depth(40, 120, 3.0, 39.0)
    stereo = get_protocol("kitti_eigen_stereo")
    assert stereo.scaling == "fixed" and stereo.fixed_scale == 5.4

    exact = evaluate_frame(gt, gt / 5.4, stereo)
    assert exact["abs_rel"] < 1e-12
    assert exact["ratio"] == 5.4
    # Twice too deep after x5.4 (all < 80 m, so no clamping): abs_rel = |gt - 2 gt| / gt = 1 and no δ hits.
    doubled = evaluate_frame(gt, gt / 2.7, stereo)
    assert doubled["abs_rel"] == pytest.approx(1.0)
    assert doubled["a1"] == 0.0


def test_predictions_are_clamped_to_the_protocol_range() -> None:
    gt = np.full((8, 8), 50.0)
    far = np.full((8, 8), 100.0)
    metric = get_protocol("world_metric")  # 0.1-80 m, no scaling
    # Clamped to 80: |50 - 80| / 50 = 0.6; unclamped: |50 - 100| / 50 = 1.0.
    assert evaluate_frame(gt, far, metric)["abs_rel"] == pytest.approx(0.6)
    unclamped = get_protocol("world_metric", clamp_pred=False)
    assert evaluate_frame(gt, far, unclamped)["abs_rel"] == pytest.approx(1.0)
    # Lower clamp: 0.01 m -> 0.1 m; with gt = 1: |1 - 0.1| / 1 = 0.9.
    near = evaluate_frame(np.ones((8, 8)), np.full((8, 8), 0.01), metric)
    assert near["abs_rel"] == pytest.approx(0.9)


def test_disparity_resize_and_depth_resize_differ_as_expected() -> None:
    pred = np.array([[1.0, 4.0], [1.0, 4.0]])  # depth 1 m left, 4 m right; upsampled 2 -> 4 columns
    # cv2 INTER_LINEAR (half-pixel centres): output x maps to source (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75,
    # 1.25 -> weights of the right pixel 0 (edge), 0.25, 0.75, 1 (edge).
    # depth resize:     [1, 0.75*1 + 0.25*4, 0.25*1 + 0.75*4, 4]          = [1, 1.75, 3.25, 4]
    # disparity resize: 1/[1, 0.75*1 + 0.25*0.25, 0.25*1 + 0.75*0.25, 0.25] = 1/[1, 0.8125, 0.4375, 0.25]
    #                                                                    = [1, 16/13, 16/7, 4]
    by_depth = resize_prediction(pred, (2, 4), get_protocol("world", resize="depth"))
    by_disp = resize_prediction(pred, (2, 4), get_protocol("world"))
    np.testing.assert_allclose(by_depth, [[1, 1.75, 3.25, 4]] * 2, rtol=1e-12)
    np.testing.assert_allclose(by_disp, [[1, 16 / 13, 16 / 7, 4]] * 2, rtol=1e-12)
    # md4all: torch bilinear with align_corners=True maps x to x/3 -> [1, 2, 3, 4].
    by_md4all = resize_prediction(pred, (2, 4), get_protocol("nuscenes_md4all"))
    np.testing.assert_allclose(by_md4all, [[1, 2, 3, 4]] * 2, rtol=1e-6)
    nearest = resize_prediction(pred, (2, 4), get_protocol("world", interpolation="nearest"))
    np.testing.assert_array_equal(nearest, [[1, 1, 4, 4]] * 2)

    # Through evaluate_frame the two resizes give different errors against GT [1, 1.75, 3.25, 4].
    gt = np.array([[1.0, 1.75, 3.25, 4.0]] * 2)
    assert evaluate_frame(gt, pred, get_protocol("world_metric", resize="depth"))["abs_rel"] < 1e-12
    disp_err = evaluate_frame(gt, pred, get_protocol("world_metric"))["abs_rel"]
    # mean(|1.75 - 16/13| / 1.75, |3.25 - 16/7| / 3.25) over 4 columns (the 2 edges are exact)
    expected = (abs(1.75 - 16 / 13) / 1.75 + abs(3.25 - 16 / 7) / 3.25) / 4
    assert disp_err == pytest.approx(expected, rel=1e-10)


def test_float32_prediction_resize_matches_md2_cv2_path() -> None:
    # MD2: cv2.resize(float32 disparity, (W, H)) then 1 / disp.
    import cv2

    rng = np.random.default_rng(0)
    disp = rng.uniform(0.01, 10.0, size=(12, 40)).astype(np.float32)
    ours = resize_prediction(1.0 / disp, (37, 124), get_protocol("kitti_eigen"))
    md2 = 1.0 / cv2.resize(disp, (124, 37))
    np.testing.assert_allclose(ours, md2, rtol=1e-6)


def _md2_reference_frame(gt_depth: np.ndarray, pred_disp: np.ndarray, stereo: bool) -> tuple[list, float]:
    """Monodepth2's evaluate() loop body for eval_split='eigen', written out step by step in float32."""
    import cv2

    gt_height, gt_width = gt_depth.shape
    pred_disp = cv2.resize(pred_disp, (gt_width, gt_height))
    pred_depth = 1 / pred_disp
    mask = np.logical_and(gt_depth > 1e-3, gt_depth < 80)
    box = np.array(
        [0.40810811 * gt_height, 0.99189189 * gt_height, 0.03594771 * gt_width, 0.96405229 * gt_width]
    )
    box = box.astype(np.int32)
    crop = np.zeros(mask.shape)
    crop[box[0] : box[1], box[2] : box[3]] = 1
    mask = np.logical_and(mask, crop)
    pred_depth, gt_depth = pred_depth[mask], gt_depth[mask]
    pred_depth *= 5.4 if stereo else 1.0
    ratio = 5.4
    if not stereo:
        ratio = np.median(gt_depth) / np.median(pred_depth)
        pred_depth *= ratio
    pred_depth[pred_depth < 1e-3] = 1e-3
    pred_depth[pred_depth > 80] = 80
    thresh = np.maximum(gt_depth / pred_depth, pred_depth / gt_depth)
    errors = [
        np.mean(np.abs(gt_depth - pred_depth) / gt_depth),
        np.mean((gt_depth - pred_depth) ** 2 / gt_depth),
        np.sqrt(((gt_depth - pred_depth) ** 2).mean()),
        np.sqrt(((np.log(gt_depth) - np.log(pred_depth)) ** 2).mean()),
        (thresh < 1.25).mean(),
        (thresh < 1.25**2).mean(),
        (thresh < 1.25**3).mean(),
    ]
    return errors, float(ratio)


@pytest.mark.parametrize("stereo", [False, True])
def test_evaluate_frame_reproduces_md2_loop_on_kitti_sized_frame(stereo: bool) -> None:
    rng = np.random.default_rng(7)
    gt = np.zeros((375, 1242), dtype=np.float32)
    rows, cols = rng.integers(100, 375, 20000), rng.integers(0, 1242, 20000)  # sparse LiDAR-like GT
    gt[rows, cols] = rng.uniform(0.5, 95.0, 20000).astype(np.float32)  # includes > 80 m (masked out)
    # A 192x640 sigmoid-scaled disparity as MD2's disp_to_depth(0.1, 100) produces, with scale 1/30-ish.
    disp = (0.01 + 9.99 * rng.uniform(0.0, 0.05, size=(192, 640))).astype(np.float32)
    expected, expected_ratio = _md2_reference_frame(gt.copy(), disp, stereo)
    protocol = get_protocol("kitti_eigen_stereo" if stereo else "kitti_eigen")
    ours = evaluate_frame(gt, 1.0 / disp, protocol)
    # MD2 runs in float32; we compute in float64 -> agreement to float32 precision.
    np.testing.assert_allclose([ours[m] for m in METRIC_NAMES], expected, rtol=2e-5)
    assert ours["ratio"] == pytest.approx(expected_ratio, rel=1e-5)


def test_benchmark_protocol_keeps_far_gt_like_md2() -> None:
    gt = np.full((20, 40), 30.0)
    gt[12, 20] = 90.0  # beyond 80 m: MD2 keeps it for eigen_benchmark (mask gt > 0) but not for eigen
    gt[13, 20] = 0.0
    pred = np.full((20, 40), 30.0)
    bench = evaluate_frame(gt, pred, get_protocol("kitti_eigen_benchmark"))
    assert bench["valid_pixels"] == 20 * 40 - 1
    eigen_no_crop = evaluate_frame(gt, pred, get_protocol("kitti_eigen", crop="none"))
    assert eigen_no_crop["valid_pixels"] == 20 * 40 - 2
    # The 90 m pixel: prediction (30 after median scaling) stays 30; |90 - 30| / 90 over 799 pixels.
    assert bench["abs_rel"] == pytest.approx((60 / 90) / 799)


def test_md4all_lower_median_vs_numpy_median() -> None:
    gt = np.array([[2.0, 4.0, 6.0, 8.0]])
    pred = np.array([[1.0, 2.0, 4.0, 5.0]])
    # numpy (MD2): median(gt) = 5, median(pred) = 3 -> ratio 5/3; torch's lower median: 4 / 2 = 2.
    average = evaluate_frame(gt, pred, get_protocol("world", crop="none"))
    lower = evaluate_frame(gt, pred, get_protocol("nuscenes_md4all", scaling="median"))
    assert average["ratio"] == pytest.approx(5 / 3)
    assert lower["ratio"] == pytest.approx(2.0)
    assert float(torch.median(torch.tensor(gt[0])) / torch.median(torch.tensor(pred[0]))) == lower["ratio"]


def test_empty_valid_mask_error_names_the_frame() -> None:
    evaluator = DepthEvaluator(get_protocol("kitti_eigen"))
    with pytest.raises(ValueError, match=r"0000000005.*no valid GT pixels"):
        evaluator.add(np.zeros((30, 90)), np.ones((10, 30)), condition="night", name="0000000005")
    assert len(evaluator) == 0


def test_bad_prediction_error_names_the_frame() -> None:
    with pytest.raises(ValueError, match=r"seq_07/42.*finite and > 0"):
        evaluate_frame(np.ones((4, 4)), np.zeros((4, 4)), get_protocol("world"), name="seq_07/42")
    with pytest.raises(ValueError, match="2-D"):
        evaluate_frame(np.ones((4, 4, 3)), np.ones((4, 4)), get_protocol("world"))


# ---------------------------------------------------------------------------------- post-processing


def test_post_processing_blends_borders_and_centre_like_md2() -> None:
    width = 41  # linspace(0, 1, 41) = k/40; left weight 1 - clip(20 (k/40 - 0.05), 0, 1) = 1 - clip(k/2 - 1)
    # -> weight 1 for k = 0, 1, 2; 0.5 at k = 3; 0 from k = 4 (mirrored on the right).
    disp = np.ones((3, width))
    flipped_raw = np.tile(np.arange(width, dtype=np.float64), (3, 1))  # output on the flipped image
    back = flipped_raw[:, ::-1]  # = 40 - k once flipped back
    out = post_process_disparity(disp, flipped_raw)
    np.testing.assert_allclose(out[:, 0], back[:, 0])  # left border from the flipped prediction (40)
    np.testing.assert_allclose(out[:, 2], back[:, 2])
    np.testing.assert_allclose(out[:, -1], disp[:, -1])  # right border from the original (1)
    np.testing.assert_allclose(out[:, 20], 0.5 * (1 + 20))  # centre: the mean
    # k = 3: 0.5 * back + 0.5 * mean = 0.5 * 37 + 0.25 * (1 + 37) = 28.0
    np.testing.assert_allclose(out[:, 3], 28.0)
    # WeatherDepth's variant is the plain mean everywhere.
    np.testing.assert_allclose(post_process_disparity(disp, flipped_raw, blend="mean"), 0.5 * (disp + back))


def test_post_processing_torch_batched_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    disp = rng.uniform(0.1, 1.0, size=(2, 1, 5, 33))
    flipped = rng.uniform(0.1, 1.0, size=(2, 1, 5, 33))
    expected = np.stack([post_process_disparity(disp[i, 0], flipped[i, 0]) for i in range(2)])[:, None]
    np.testing.assert_allclose(post_process_disparity(disp, flipped), expected, rtol=1e-12)
    result = post_process_disparity(torch.from_numpy(disp).float(), torch.from_numpy(flipped).float())
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        post_process_disparity(disp, flipped[:, :, :4])


# -------------------------------------------------------------------------------------- aggregation


def test_evaluator_condition_means_and_all_is_mean_over_images() -> None:
    evaluator = DepthEvaluator(get_protocol("world_metric"))
    gt = np.full((6, 6), 10.0)
    evaluator.add(gt, np.full((6, 6), 11.0), condition="day", name="d0")  # abs_rel 0.1
    evaluator.add(gt, np.full((6, 6), 13.0), condition="day", name="d1")  # abs_rel 0.3
    evaluator.add(gt, np.full((6, 6), 16.0), condition="night", name="n0")  # abs_rel 0.6
    summary = evaluator.summary()
    assert summary["day"]["abs_rel"] == pytest.approx(0.2)
    assert summary["night"]["abs_rel"] == pytest.approx(0.6)
    # "all" = (0.1 + 0.3 + 0.6) / 3 = 1/3 over images, NOT (0.2 + 0.6) / 2 = 0.4 over condition means.
    assert summary["all"]["abs_rel"] == pytest.approx(1 / 3)
    assert summary["counts"] == {"day": 2, "night": 1, "all": 3}
    assert "scale_ratio" not in summary  # no median scaling
    assert set(summary["all"]) == set(METRIC_NAMES)  # ratio/valid_pixels stay out of the means
    frames = evaluator.per_frame()
    assert [f["name"] for f in frames] == ["d0", "d1", "n0"]
    assert frames[2]["condition"] == "night" and frames[2]["abs_rel"] == pytest.approx(0.6)


def test_evaluator_md4all_groups_and_ratio_statistics() -> None:
    evaluator = DepthEvaluator(get_protocol("world"), groups=MD4ALL_CONDITION_GROUPS)
    gt = _smooth_depth(10, 30, 5.0, 50.0)
    evaluator.add(gt, gt / 2.0, condition="day-clear")  # ratio 2
    evaluator.add(gt, gt / 4.0, condition="day-rain")  # ratio 4
    evaluator.add(gt, gt / 3.0, condition="night-clear")  # ratio 3
    summary = evaluator.summary()
    assert summary["counts"] == {
        "day-clear": 1,
        "day-rain": 1,
        "night-clear": 1,
        "day": 2,
        "night": 1,
        "clear": 2,
        "rain": 1,
        "all": 3,
    }
    # MD2 statistic over all frames: median 3, std of [2/3, 4/3, 1] = sqrt(((1/3)^2 + (1/3)^2 + 0) / 3).
    assert summary["scale_ratio"]["all"]["median"] == pytest.approx(3.0)
    assert summary["scale_ratio"]["all"]["std"] == pytest.approx(math.sqrt(2 / 27))
    assert summary["scale_ratio"]["day"]["median"] == pytest.approx(3.0)  # median of [2, 4]


def test_evaluator_rejects_reserved_and_empty() -> None:
    evaluator = DepthEvaluator(get_protocol("world"))
    with pytest.raises(ValueError, match="no frames"):
        evaluator.summary()
    with pytest.raises(ValueError, match="reserved"):
        evaluator.add(np.ones((4, 4)), np.ones((4, 4)), condition="counts")


# ------------------------------------------------------------------------------------- results.json


def test_results_json_round_trip(tmp_path) -> None:
    protocol = get_protocol("kitti_eigen")
    evaluator = DepthEvaluator(protocol)
    gt = _smooth_depth(40, 120, 3.0, 60.0)
    evaluator.add(gt, gt * 0.5, condition="clear")
    evaluator.add(gt, gt * 0.5 + 1.0, condition="fog")
    summary = evaluator.summary()
    path = write_results(tmp_path / "run" / "results.json", summary, protocol, extra={"checkpoint": "ck.pt"})

    raw = json.loads(path.read_text())
    assert raw["clear"]["abs_rel"] == summary["clear"]["abs_rel"]
    assert raw["protocol"]["name"] == "kitti_eigen"
    loaded = load_results(path)
    for condition in ("clear", "fog", "all"):
        assert loaded[condition] == summary[condition]
    assert loaded["counts"] == {"clear": 1, "fog": 1, "all": 2}
    assert loaded["extra"] == {"checkpoint": "ck.pt"}
    assert loaded["scale_ratio"]["all"]["median"] == pytest.approx(2.0, rel=0.1)
    assert EvalProtocol(**loaded["protocol"]) == protocol
    assert asdict(protocol) == loaded["protocol"]


def test_load_results_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"all": {}}')
    with pytest.raises(ValueError, match="missing key"):
        load_results(bad)


# ---------------------------------------------------------------------------------------- protocols


def test_registered_protocols_have_the_papers_settings() -> None:
    required = {
        "kitti_eigen",
        "kitti_eigen_stereo",
        "kitti_eigen_benchmark",
        "weatherkitti",
        "nuscenes_md4all",
        "robotcar_md4all",
        "drivingstereo",
        "world",
        "world_metric",
    }
    assert required <= set(PROTOCOLS)
    for name, protocol in PROTOCOLS.items():
        assert protocol.name == name and protocol.description
    eigen = PROTOCOLS["kitti_eigen"]
    assert (eigen.min_depth, eigen.max_depth, eigen.crop, eigen.scaling) == (1e-3, 80.0, "garg", "median")
    assert (PROTOCOLS["nuscenes_md4all"].min_depth, PROTOCOLS["nuscenes_md4all"].max_depth) == (0.1, 80.0)
    assert PROTOCOLS["nuscenes_md4all"].scaling == "none"
    assert PROTOCOLS["robotcar_md4all"].max_depth == 50.0
    assert PROTOCOLS["world"].scaling == "median" and PROTOCOLS["world_metric"].scaling == "none"


def test_get_protocol_errors_list_valid_names_and_fields() -> None:
    with pytest.raises(KeyError, match=r"kitti_eigen.*world"):
        get_protocol("kitti_eigne")
    with pytest.raises(TypeError, match=r"max_depthh.*valid fields:.*max_depth"):
        get_protocol("kitti_eigen", max_depthh=50)
    assert get_protocol("kitti_eigen", post_process=True).post_process is True
    with pytest.raises(ValueError, match="crop='garg2'"):
        get_protocol("kitti_eigen", crop="garg2")
    with pytest.raises(ValueError, match="fixed_scale"):
        get_protocol("world_metric", fixed_scale=5.4)


# ------------------------------------------------------------------------------------------ reports


def _three_condition_summary() -> dict:
    evaluator = DepthEvaluator(get_protocol("world_metric"))
    gt = np.full((4, 4), 10.0)
    for condition, pred in (("clear", 11.0), ("night", 13.0), ("fog", 16.0)):
        evaluator.add(gt, np.full((4, 4), pred), condition=condition)
    return evaluator.summary()


def test_format_table_and_adverse_mean() -> None:
    summary = _three_condition_summary()
    mean = adverse_mean(summary)  # night (0.3) and fog (0.6) present -> 0.45; clear is not adverse
    assert mean["abs_rel"] == pytest.approx(0.45)
    table = format_table(summary, metrics=("abs_rel", "a1"), adverse=("night", "fog"))
    lines = table.splitlines()
    assert lines[0] == "| condition | abs_rel | a1 | n |"
    assert lines[2] == "| clear | 0.1000 | 1.0000 | 1 |"
    assert lines[-2].startswith("| all | 0.3333 |")
    assert lines[-1].startswith("| adverse mean | 0.4500 |")
    with pytest.raises(KeyError, match="snow"):
        format_table(summary, conditions=["snow"])
    with pytest.raises(ValueError, match="none of the adverse"):
        adverse_mean(summary, adverse=("snow",))
    buffer = io.StringIO()
    print_table(summary, file=buffer)
    assert "night" in buffer.getvalue() and "0.3000" in buffer.getvalue()


def test_plot_metric_bars_writes_png(tmp_path) -> None:
    summary = _three_condition_summary()
    out = plot_metric_bars({"md2": summary, "ours": summary}, "abs_rel", tmp_path / "bars.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="absrel"):
        plot_metric_bars({"md2": summary}, "absrel", tmp_path / "x.png")
