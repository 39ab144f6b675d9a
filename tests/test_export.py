"""ONNX export: the CLI writes a model that ONNX Runtime runs with dynamic batch and size, matching torch
within 1e-4; the ONNX Runtime backend predicts what torch predicts; missing packages get an install hint."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth import export
from robustdepth.cli import main
from robustdepth.configure import load_config
from robustdepth.inference import DepthModel
from robustdepth.networks import ScaleZeroDisparity
from robustdepth.training.trainer import Trainer
from tests.conftest import corridor_overrides


@pytest.fixture(scope="module")
def exported(corridor: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, onnx path) — a real checkpoint (random-weight nets at 64×192) exported once by the CLI."""
    tmp = tmp_path_factory.mktemp("export")
    trainer = Trainer(load_config("monodepth2", corridor_overrides(corridor)), run_dir=tmp / "run")
    ckpt = trainer.save()
    onnx_path = tmp / "depth.onnx"
    assert main(["export", str(ckpt), "--onnx", str(onnx_path)]) == 0
    return ckpt, onnx_path


def test_export_matches_torch_with_dynamic_shapes(exported: tuple[Path, Path], capsys) -> None:
    ckpt, onnx_path = exported
    assert onnx_path.is_file()
    torch_model = DepthModel.from_checkpoint(ckpt, device="cpu", channels_last=False)
    wrapped = ScaleZeroDisparity(torch_model.net)
    # batch and size differ from the export example (2×64×192): the graph is dynamic
    report = export.check_onnx(wrapped, onnx_path, [(1, 64, 192), (4, 96, 320), (1, 128, 256)])
    assert report["max_abs_diff"] <= 1e-4


def test_onnxruntime_backend_predicts_like_torch(exported: tuple[Path, Path], corridor: Path, tmp_path: Path) -> None:
    ckpt, onnx_path = exported
    ort_model = DepthModel.from_checkpoint(onnx_path, backend="onnxruntime")
    torch_model = DepthModel.from_checkpoint(ckpt, device="cpu")
    assert (ort_model.height, ort_model.width, ort_model.max_depth) == (64, 192, torch_model.max_depth)
    rgb = np.asarray(Image.open(corridor / "000003.png"))
    np.testing.assert_allclose(ort_model.infer(rgb), torch_model.infer(rgb), rtol=1e-3)
    out = tmp_path / "pred"
    assert main(["predict", str(onnx_path), str(corridor / "000003.png"), "--out", str(out),
                 "--backend", "onnxruntime"]) == 0
    np.testing.assert_allclose(np.load(out / "000003_depth.npy"), torch_model.infer(rgb), rtol=1e-3)


def test_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["disp"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("disp", TensorProto.FLOAT, [1, 3, 64, 64])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    with pytest.raises(export.ExportError, match="metadata"):
        export.load_onnx_model(path)
    path.write_bytes(b"not onnx")
    with pytest.raises(export.ExportError, match="foreign.onnx"):
        export.load_onnx_model(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        export.ort_session(tmp_path / "missing.onnx")


def test_missing_onnx_packages_give_an_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.import_module

    def without_onnxscript(name: str, *args: object) -> object:
        if name == "onnxscript":
            raise ImportError("No module named 'onnxscript'")
        return real(name, *args)

    monkeypatch.setattr(export.importlib, "import_module", without_onnxscript)
    with pytest.raises(export.ExportError, match=r"onnxscript.*pip install robustdepth\[onnx\]"):
        export.export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", 64, 192)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="100×192"):
        monkeypatch.undo()
        export.export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", 100, 192)  # type: ignore[arg-type]
