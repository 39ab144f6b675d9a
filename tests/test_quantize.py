"""int8 export: a calibrated QDQ model that ONNX Runtime loads like the fp32 export and whose depth stays
close to fp32 (median relative error, not timing; speed is benchmarks/speed.py --sections int8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from robustdepth.config import ConfigError
from robustdepth.configure import load_config
from robustdepth.export import ExportError, load_onnx_model
from robustdepth.inference import DepthModel
from robustdepth.quantize import (
    calibration_files,
    export_int8,
    median_relative_depth_error,
    network_input,
)
from robustdepth.training.trainer import Trainer
from tests.conftest import corridor_overrides


def test_calibration_files_are_spread_over_the_folder(tmp_path: Path) -> None:
    for seq in ("a", "b"):
        (tmp_path / seq).mkdir()
        for i in range(5):
            Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / seq / f"{i}.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    picks = calibration_files(tmp_path, 4)
    assert len(picks) == 4 and picks[0].parent.name == "a" and picks[-1].parent.name == "b"  # both sequences
    assert len(calibration_files(tmp_path, 100)) == 10
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        calibration_files(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not found"):
        calibration_files(tmp_path / "missing")
    with pytest.raises(ConfigError, match=">= 1"):
        calibration_files(tmp_path, 0)


def test_int8_model_loads_like_fp32_and_its_depth_stays_close(corridor: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config("monodepth2", corridor_overrides(corridor)), tmp_path / "run")
    with torch.no_grad():  # random init predicts a near-constant disparity; sharper disparity heads give a real map
        for head in (10, 11, 12, 13):
            getattr(trainer.models.depth.decoder.decoder, str(head)).conv.weight.mul_(30)
    checkpoint = trainer.save()
    trainer.close()
    report = export_int8(checkpoint, tmp_path / "int8.onnx", corridor, max_frames=8)
    assert report["calibration_frames"] == 8 and report["quantized_nodes"] > 20  # every conv input quantised
    model = load_onnx_model(tmp_path / "int8.onnx")  # what predict --backend onnxruntime does with a .onnx file
    meta = model.session.get_modelmeta().custom_metadata_map
    assert meta["robustdepth.precision"] == "int8" and (model.height, model.width) == (64, 192)
    reference = DepthModel.from_checkpoint(checkpoint, device="cpu", precision="fp32", channels_last=False)
    frames = calibration_files(corridor, 4)
    x = torch.from_numpy(np.concatenate([network_input(f, 64, 192) for f in frames]))
    fp32, int8 = reference.predict_depth(x), model.predict_depth(x)
    assert float(fp32.max() / fp32.min()) > 1.5  # a depth map with structure, not a constant
    error = median_relative_depth_error(fp32, int8)
    # quantised (not a copy of fp32), yet close; ranges calibrated on blank frames miss this bound by far
    assert 0 < error < 0.02, error
    assert np.isfinite(model.infer(np.asarray(Image.open(frames[0])))).all()


def test_int8_export_needs_calibration(tmp_path: Path) -> None:
    import argparse

    from robustdepth.export_cli import cmd_export

    args = argparse.Namespace(hf=None, onnx=str(tmp_path / "x.onnx"), checkpoint="ckpt.pt", height=None, width=None,
                              int8=True, calibration=None, calibration_frames=32)
    with pytest.raises(ExportError, match="--calibration"):
        cmd_export(args)
