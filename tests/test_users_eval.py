"""``robustdepth eval`` the way users run it: any checkpoint on any folder, protocol flags, crop to aspect,
mixed frame sizes, condition labels, results per model × dataset × protocol with per-frame metrics and the
constant-depth floor (robustdepth/evaluation/anydata.py, robustdepth/cli.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.checkpoint import save_checkpoint
from robustdepth.cli import main
from robustdepth.config import ConfigError, to_dict
from robustdepth.configure import load_config
from robustdepth.data.folder import FolderSequence
from robustdepth.evaluation import evaluate_frame, get_protocol
from robustdepth.evaluation.anydata import (
    CONSTANT_DEPTH,
    AspectCroppedSequence,
    ProtocolFlags,
    apply_protocol_flags,
    centre_box,
    evaluate_any,
    results_path,
)
from robustdepth.networks import DepthNet

HEIGHT, WIDTH = 64, 192


def make_checkpoint(path: Path, overrides: list[str] | None = None, seed: int = 0) -> Path:
    """A loadable checkpoint of a random ResNet-18 DepthNet with a stored config (no training needed)."""
    cfg = load_config("monodepth2", [f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.num_workers=0",
                                     *(overrides or [])])
    torch.manual_seed(seed)
    net = DepthNet(18, scales=list(cfg.model.scales))
    return save_checkpoint(path, {"config": to_dict(cfg), "step": 1, "models": {"depth": net.state_dict()}})


def write_folder(root: Path, sizes: list[tuple[int, int]], seed: int = 0) -> Path:
    """A folder sequence with frames of the given (H, W) sizes, non-constant GT depth and a K."""
    rng = np.random.default_rng(seed)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"{i:06d}.png")
        depth = 2.0 + 30.0 * rng.random((h, w)).astype(np.float32)
        depth[: h // 8] = 0.0  # invalid rows (sky)
        np.save(root / "depth" / f"{i:06d}.npy", depth)
    h, w = sizes[0]
    (root / "intrinsics.txt").write_text(f"{0.6 * w} {1.9 * h} {w / 2} {h / 2}\n")
    return root


class MeanModel:
    """A deterministic stand-in network: depth = 1 + 10 × the pixel's mean colour (a non-constant map)."""

    height, width = HEIGHT, WIDTH

    def predict_depth(self, images: torch.Tensor, post_process: bool = False) -> torch.Tensor:
        return 1.0 + 10.0 * images.mean(1, keepdim=True)


def _independent_prediction(image_path: Path, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """What MeanModel predicts for a frame, computed without the dataset: PIL LANCZOS resize to the model."""
    img = Image.open(image_path).convert("RGB")
    if crop is not None:
        top, left, h, w = crop
        img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    return 1.0 + 10.0 * arr.mean(-1)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sizes = [(48, 160), (48, 160), (60, 80), (40, 120), (48, 160)]
    return write_folder(tmp_path_factory.mktemp("mixed") / "seq", sizes)


def _folder_cfg(root: Path, *extra: str):
    return load_config("monodepth2", ["data.dataset=folder", f"data.root={root}", "data.num_workers=0",
                                      f"data.height={HEIGHT}", f"data.width={WIDTH}", *extra])


# ------------------------------------------------------------------------------------------ protocol flags


def test_protocol_flags_replace_only_what_is_given() -> None:
    base = get_protocol("generic")
    p = apply_protocol_flags(base, ProtocolFlags(min_depth=0.5, max_depth=40, crop="garg"))
    assert (p.min_depth, p.max_depth, p.crop, p.scaling) == (0.5, 40.0, "garg", "median")
    assert apply_protocol_flags(base, ProtocolFlags()) == base


def test_scale_factor_implies_fixed_scaling_and_none_resets_it() -> None:
    fixed = apply_protocol_flags(get_protocol("generic"), ProtocolFlags(scale=5.4))
    assert (fixed.scaling, fixed.fixed_scale) == ("fixed", 5.4)
    none = apply_protocol_flags(get_protocol("kitti_eigen_stereo"), ProtocolFlags(scaling="none"))
    assert (none.scaling, none.fixed_scale) == ("none", 1.0)
    with pytest.raises(ValueError, match="contradicts"):
        apply_protocol_flags(get_protocol("generic"), ProtocolFlags(scaling="none", scale=2.0))


def test_fixed_scale_flag_changes_metrics_as_a_fixed_factor() -> None:
    rng = np.random.default_rng(3)
    gt = 5 + 20 * rng.random((20, 30))
    pred = gt / 2.0
    p = apply_protocol_flags(get_protocol("generic"), ProtocolFlags(scale=2.0))
    assert evaluate_frame(gt, pred, p)["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    none = apply_protocol_flags(get_protocol("generic"), ProtocolFlags(scaling="none"))
    assert evaluate_frame(gt, pred, none)["abs_rel"] == pytest.approx(0.5, abs=1e-9)


# ---------------------------------------------------------------------------------------------- cropping


@pytest.mark.parametrize(("h", "w", "aspect", "box"), [
    (375, 1242, 3.0, (0, 58, 375, 1125)),       # too wide: columns go, centred
    (960, 1280, 10 / 3, (288, 0, 384, 1280)),   # too tall: rows go, centred
    (100, 300, 3.0, (0, 0, 100, 300)),          # already right
])
def test_centre_box(h: int, w: int, aspect: float, box: tuple[int, int, int, int]) -> None:
    assert centre_box(h, w, aspect) == box


def test_aspect_crop_takes_the_same_pixels_from_image_and_gt(tmp_path: Path) -> None:
    h, w = 60, 80
    root = tmp_path / "seq"
    (root / "depth").mkdir(parents=True)
    index = np.arange(h * w, dtype=np.float32).reshape(h, w) + 1.0
    rgb = np.stack([(index % 251).astype(np.uint8)] * 3, -1)
    Image.fromarray(rgb).save(root / "000000.png")
    np.save(root / "depth" / "000000.npy", index)
    K = np.array([[50.0, 0, 40.0], [0, 50.0, 30.0], [0, 0, 1]])
    seq = AspectCroppedSequence(FolderSequence(root, K), aspect=3.0)
    top, left, ch, cw = centre_box(h, w, 3.0)
    gt = seq.depth_gt(0, "clear")
    img = np.asarray(seq.load_image(0, "clear"))
    assert gt.shape == (ch, cw) == img.shape[:2]
    np.testing.assert_array_equal(gt, index[top:top + ch, left:left + cw])
    np.testing.assert_array_equal(img[..., 0], rgb[top:top + ch, left:left + cw, 0])
    np.testing.assert_allclose(seq.intrinsics()[:2, 2], [40.0 - left, 30.0 - top])


# ------------------------------------------------------------------------------ mixed sizes, floor, frames


def test_mixed_frame_sizes_score_like_independent_per_frame_evaluation(mixed_folder: Path) -> None:
    protocol = get_protocol("generic")
    outcome = evaluate_any(MeanModel(), _folder_cfg(mixed_folder), protocol, batch_size=4, progress=False)
    frames = outcome.model.per_frame()
    assert len(frames) == 5
    for i, frame in enumerate(frames):
        gt = np.load(mixed_folder / "depth" / f"{i:06d}.npy")
        expected = evaluate_frame(gt, _independent_prediction(mixed_folder / f"{i:06d}.png"), protocol)
        assert frame["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-4)
        assert frame["rmse"] == pytest.approx(expected["rmse"], rel=1e-4)
        floor = evaluate_frame(gt, np.full((HEIGHT, WIDTH), CONSTANT_DEPTH), protocol)
        assert outcome.floor.per_frame()[i]["abs_rel"] == pytest.approx(floor["abs_rel"], rel=1e-9)


def test_crop_to_aspect_predicts_on_the_centre_crop(mixed_folder: Path) -> None:
    protocol = get_protocol("generic")
    outcome = evaluate_any(MeanModel(), _folder_cfg(mixed_folder), protocol, crop_to_aspect=True, batch_size=2,
                           max_frames=3, progress=False)
    frame = outcome.model.per_frame()[2]  # the 60×80 frame: rows are cropped
    gt = np.load(mixed_folder / "depth" / "000002.npy")
    box = centre_box(60, 80, WIDTH / HEIGHT)
    top, left, h, w = box
    expected = evaluate_frame(gt[top:top + h, left:left + w],
                              _independent_prediction(mixed_folder / "000002.png", box), protocol)
    assert frame["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-4)
    assert frame["valid_pixels"] == expected["valid_pixels"] < 60 * 80 * 7 / 8


def test_results_path_is_per_model_dataset_split_and_protocol(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    a = results_path(run, ckpt, _folder_cfg(tmp_path / "a"), "test", get_protocol("generic"))
    b = results_path(run, ckpt, _folder_cfg(tmp_path / "b" / "a"), "test", get_protocol("generic"))
    c = results_path(ckpt, ckpt, _folder_cfg(tmp_path / "a"), "test", get_protocol("world"))
    d = results_path(run, run / "checkpoints" / "best.pt", _folder_cfg(tmp_path / "a"), "test",
                     get_protocol("generic"))
    flagged = results_path(run, ckpt, _folder_cfg(tmp_path / "a"), "test",
                           apply_protocol_flags(get_protocol("generic"), ProtocolFlags(scaling="none")))
    cropped = results_path(run, ckpt, _folder_cfg(tmp_path / "a"), "test", get_protocol("generic"),
                           crop_to_aspect=True)
    assert len({a, b, c, d, flagged, cropped}) == 6
    assert a.name.endswith("__test__generic.json") and cropped.name.endswith("__test__generic-aspect.json")
    assert all(p.parent == run.resolve() / "eval" for p in (a, b, c, d))


# ---------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def world_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose stored data section is another dataset's, with that dataset's own options."""
    run = tmp_path_factory.mktemp("ckpt") / "run"
    make_checkpoint(run / "checkpoints" / "last.pt", ["data.dataset=world", "data.options.sequences=[seq_000]"])
    return run


def test_eval_cli_options_after_overrides_on_a_foreign_folder(world_checkpoint: Path, mixed_folder: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", str(world_checkpoint), "--protocol", "generic", "data.dataset=folder",
            f"data.root={mixed_folder}", "--max-depth", "25", "data.options.condition=night", "--batch-size", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "constant-depth floor" in out
    files = sorted((world_checkpoint / "eval").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("last__folder-seq-")
    assert re.fullmatch(r"last__folder-seq-[0-9a-f]{6}__test__generic-[0-9a-f]{6}\.json", files[0].name)
    results = json.loads(files[0].read_text())
    assert results["protocol"]["max_depth"] == 25.0 and results["counts"]["night"] == 5
    assert "clear" not in results
    frames = results["extra"]["frames"]
    assert len(frames) == 5 and {f["condition"] for f in frames} == {"night"}
    assert results["extra"]["constant_floor"]["night"]["abs_rel"] == pytest.approx(
        float(np.mean([f["constant_abs_rel"] for f in frames])))
    assert results["all"]["abs_rel"] == pytest.approx(float(np.mean([f["abs_rel"] for f in frames])))


def test_eval_of_a_second_protocol_does_not_overwrite_the_first(world_checkpoint: Path, mixed_folder: Path) -> None:
    for protocol in ("generic", "world"):
        assert main(["eval", str(world_checkpoint), "data.dataset=folder", f"data.root={mixed_folder}",
                     "--protocol", protocol, "--max-frames", "2"]) == 0
    names = {f.name.rsplit("__", 1)[1] for f in (world_checkpoint / "eval").glob("last__folder-seq-*__test__*.json")}
    assert {"generic.json", "world.json"} <= names


def test_eval_protocol_flag_errors_are_one_line(world_checkpoint: Path, mixed_folder: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(world_checkpoint), "data.dataset=folder", f"data.root={mixed_folder}",
                 "--min-depth", "50", "--max-depth", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "min_depth < max_depth" in err and err.count("\n") == 1


def test_protocol_flags_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        from robustdepth.cli import _config_errors_as_one_line

        _config_errors_as_one_line(lambda: apply_protocol_flags(get_protocol("generic"),
                                                                ProtocolFlags(min_depth=3, max_depth=1)))
