"""The command line end to end: help texts, train → eval → predict on the corridor, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robustdepth
from robustdepth.cli import build_parser, main
from tests.conftest import corridor_overrides

SUBCOMMANDS = ("train", "eval", "predict", "config", "demo")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main([command, "--help"])
    assert err.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_parser_lists_subcommands() -> None:
    help_text = build_parser().format_help()
    for command in SUBCOMMANDS:
        assert command in help_text


def test_unknown_key_is_a_clear_cli_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "monodepth2", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr'" in err and "batch_size" in err


@pytest.fixture(scope="module")
def trained(corridor: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "monodepth2", *corridor_overrides(corridor, **{"optim.max_steps": 2}),
                 "--run-dir", str(run)]) == 0
    return run


def test_train_writes_config_logs_and_checkpoint(trained: Path) -> None:
    assert (trained / "config.yaml").is_file()
    assert (trained / "checkpoints" / "last.pt").is_file()
    assert any((trained / "tensorboard").iterdir())


def test_eval_writes_results_per_condition(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.json"
    assert main(["eval", str(trained), "--protocol", "world", "--out", str(out), "--max-frames", "5"]) == 0
    results = json.loads(out.read_text())
    assert results["protocol"]["name"] == "world" and results["counts"]["all"] == 5
    assert 0 < results["clear"]["abs_rel"] < 5
    assert "abs_rel" in capsys.readouterr().out


def test_predict_images_and_one_call_api(trained: Path, corridor: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    assert main(["predict", str(trained), str(corridor / "000003.png"), "--out", str(out), "--panel"]) == 0
    depth = np.load(out / "000003_depth.npy")
    assert depth.shape == (64, 192) and np.isfinite(depth).all() and (depth > 0).all()
    assert Image.open(out / "000003_panel.png").size == (384, 64)
    model = robustdepth.load(trained, device="cpu")
    rgb = np.asarray(Image.open(corridor / "000003.png"))
    assert np.allclose(model.infer(rgb), depth, rtol=1e-5)
    assert model.infer(rgb[:50, :150]).shape == (50, 150)  # any input size, output at input resolution


def test_predict_errors_name_the_input(trained: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    assert main(["predict", str(trained), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["predict", str(trained), str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    with pytest.raises(ValueError, match="H×W×3"):
        robustdepth.load(trained, device="cpu").infer(np.zeros((4, 4, 2)))  # (H×W grayscale is accepted)


def test_one_call_api_defaults_to_the_fast_path_and_eval_to_fp32(trained: Path, corridor: Path) -> None:
    from robustdepth.inference import DepthModel, resolve_precision

    fast = robustdepth.load(trained, device="cpu")
    exact = DepthModel.from_checkpoint(trained, device="cpu")
    assert fast.precision == resolve_precision("auto", torch.device("cpu")) and fast.channels_last
    assert exact.precision == "fp32"
    rgb = np.asarray(Image.open(corridor / "000003.png"))
    ref = exact.infer(rgb)
    assert np.abs(fast.infer(rgb) / ref - 1).max() < 0.03  # bf16 rounding of the sigmoid: ~1 % of depth
