"""``robustdepth predict`` outputs (npy, png16, gray, color), ``.txt`` lists, the side-by-side mp4, PLY point
clouds, the Python API, and which checkpoint a path means (pipeline runs, ``best``)
(robustdepth/outputs.py, robustdepth/checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import robustdepth
from robustdepth.checkpoint import CheckpointError, final_stage, pick_checkpoint
from robustdepth.cli import main
from robustdepth.data.base import DataError, read_depth
from robustdepth.outputs import (
    backproject,
    encode_depth,
    expand_inputs,
    parse_formats,
    read_ply,
    write_ply,
)
from tests.test_users_eval import make_checkpoint


def _depth(h: int = 24, w: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (2.0 + 0.5 * yy + 0.1 * xx).astype(np.float32)  # non-constant, near at the top-left


# ------------------------------------------------------------------------------------------------ formats


def test_png16_is_metres_times_256_and_reads_back_with_the_loaders(tmp_path: Path) -> None:
    depth = _depth()
    png = encode_depth(depth, "png16")
    assert png.dtype == np.uint16
    np.testing.assert_array_equal(png, np.rint(depth * 256).astype(np.uint16))
    Image.fromarray(png).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_depth(tmp_path / "d.png"), depth, atol=1 / 512)


def test_gray_is_near_bright_and_spans_the_range() -> None:
    depth = _depth()
    gray = encode_depth(depth, "gray")
    assert gray.dtype == np.uint8 and gray.shape == depth.shape
    assert gray[0, 0] == 255 and gray[-1, -1] == 0  # nearest pixel brightest, farthest darkest
    order = np.argsort(depth.ravel(), kind="stable")
    assert np.all(np.diff(gray.ravel()[order].astype(int)) <= 0)  # monotone: farther is never brighter


def test_color_is_rgb_and_npy_is_the_depth() -> None:
    depth = _depth()
    assert encode_depth(depth, "color").shape == (*depth.shape, 3)
    np.testing.assert_array_equal(encode_depth(depth, "npy"), depth)


def test_parse_formats() -> None:
    assert parse_formats("png16, gray,png16") == ("png16", "gray")
    with pytest.raises(DataError, match="npy, png16, gray, color"):
        parse_formats("npy,jpg")


def test_txt_list_inputs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    lst = tmp_path / "sub" / "list.txt"
    lst.write_text("# frames\na.png\n\n/abs/b.png\n  c/d.png  \n")
    assert expand_inputs([lst, "x.png"]) == [tmp_path / "sub" / "a.png", Path("/abs/b.png"),
                                             tmp_path / "sub" / "c" / "d.png", Path("x.png")]


# -------------------------------------------------------------------------------------------- point cloud


def test_backprojected_points_project_back_to_their_pixels() -> None:
    depth = _depth()
    K = np.array([[30.0, 0, 19.5], [0, 28.0, 11.0], [0, 0, 1]])
    points, vu = backproject(depth, K, stride=3)
    np.testing.assert_allclose(points[:, 2], depth[vu[:, 0], vu[:, 1]])
    u = K[0, 0] * points[:, 0] / points[:, 2] + K[0, 2]
    v = K[1, 1] * points[:, 1] / points[:, 2] + K[1, 2]
    np.testing.assert_allclose(u, vu[:, 1], atol=1e-4)
    np.testing.assert_allclose(v, vu[:, 0], atol=1e-4)


def test_ply_round_trip(tmp_path: Path) -> None:
    points = np.random.default_rng(0).normal(size=(17, 3)).astype(np.float32)
    colours = np.arange(51, dtype=np.uint8).reshape(17, 3)
    vertices = read_ply(write_ply(tmp_path / "p.ply", points, colours))
    assert len(vertices) == 17
    np.testing.assert_array_equal(np.stack([vertices["x"], vertices["y"], vertices["z"]], -1), points)
    np.testing.assert_array_equal(vertices["green"], colours[:, 1])


# ----------------------------------------------------------------------------------------- the predictor


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    run = root / "run"
    make_checkpoint(run / "checkpoints" / "last.pt")
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50, 90, 3), dtype=np.uint8)).save(frames / f"f{i}.png")
    (frames / "intrinsics.txt").write_text("60 60 45 25\n")
    return run


def test_cli_writes_every_format_video_and_point_clouds(run: Path, tmp_path: Path) -> None:
    frames = run.parent / "frames"
    out = tmp_path / "out"
    assert main(["predict", str(run), str(frames / "f0.png"), "--out", str(out), "--format", "npy,png16,gray,color",
                 str(frames / "f1.png"), "--video-out", str(out / "side.mp4"), "--pointcloud",
                 "--pointcloud-stride", "2", "--precision", "fp32"]) == 0
    for name in ("f0", "f1"):
        depth = np.load(out / f"{name}_depth.npy")
        assert depth.shape == (50, 90)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}_depth16.png")),
                                      encode_depth(depth, "png16"))
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}_gray.png")), encode_depth(depth, "gray"))
        assert np.asarray(Image.open(out / f"{name}_disp.png")).shape == (50, 90, 3)
        vertices = read_ply(out / f"{name}.ply")
        assert len(vertices) == 25 * 45
        np.testing.assert_allclose(vertices["z"], depth[::2, ::2].ravel(), rtol=1e-6)
    cap = cv2.VideoCapture(str(out / "side.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[:2] == (50, 180)  # image | depth side by side


def test_only_the_chosen_formats_are_written(run: Path, tmp_path: Path) -> None:
    assert main(["predict", str(run), str(run.parent / "frames" / "f2.png"), "--out", str(tmp_path),
                 "--format", "png16"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f2_depth16.png"]


def test_python_api_returns_what_the_cli_writes(run: Path, tmp_path: Path) -> None:
    lst = run.parent / "frames" / "list.txt"
    lst.write_text("f2.png\nf0.png\n")
    records = robustdepth.predict(str(run), [lst], tmp_path, formats=["npy", "gray"], precision="fp32")
    assert [r["name"] for r in records] == ["f2", "f0"]
    assert records[0]["npy"] == tmp_path / "f2_depth.npy" and records[0]["gray"].is_file()
    model = robustdepth.load(str(run), precision="fp32")
    direct = model.infer(np.asarray(Image.open(run.parent / "frames" / "f2.png")))
    np.testing.assert_allclose(np.load(records[0]["npy"]), direct, rtol=1e-5)


def test_pointcloud_without_a_camera_is_one_clear_error(run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "lone.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    assert main(["predict", str(run), str(img), "--out", str(tmp_path / "o"), "--pointcloud"]) == 2
    assert "--intrinsics fx,fy,cx,cy" in capsys.readouterr().err


# ------------------------------------------------------------------------------ pipeline runs, last / best


def _weights_sum(model: robustdepth.inference.DepthModel) -> float:
    return float(sum(p.double().sum() for p in model.net.parameters()))


def test_load_of_a_pipeline_run_picks_the_student(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "teacher" / "checkpoints" / "last.pt", seed=1)
    make_checkpoint(tmp_path / "student" / "checkpoints" / "last.pt", seed=2)
    assert final_stage(tmp_path) == tmp_path / "student"
    student = robustdepth.load(str(tmp_path / "student"), precision="fp32")
    assert _weights_sum(robustdepth.load(str(tmp_path), precision="fp32")) == _weights_sum(student)
    teacher = robustdepth.load(str(tmp_path / "teacher"), precision="fp32")
    assert _weights_sum(teacher) != _weights_sum(student)


def test_pick_best(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "checkpoints" / "last.pt", seed=1)
    with pytest.raises(CheckpointError, match="train.val_every"):
        pick_checkpoint(tmp_path, "best")
    make_checkpoint(tmp_path / "checkpoints" / "best.pt", seed=3)
    assert pick_checkpoint(tmp_path, "best") == tmp_path / "checkpoints" / "best.pt"
    assert pick_checkpoint(tmp_path, "last") == tmp_path / "checkpoints" / "last.pt"
    best = robustdepth.load(str(tmp_path), precision="fp32", pick="best")
    torch.manual_seed(3)
    assert _weights_sum(best) != _weights_sum(robustdepth.load(str(tmp_path), precision="fp32"))
