"""ONNX export of the depth network, checked against torch, and an ONNX Runtime inference backend.

    robustdepth export runs/demo/baseline --onnx depth.onnx

The exported graph maps a B×3×H×W image in [0, 1] to the scale-0 sigmoid disparity B×1×H×W. Batch,
height and width are dynamic (H and W multiples of 32, ≥ 64 px: the encoder halves five times and
pads by reflection). The checkpoint's resolution and depth range are stored in the model's metadata, so
``DepthModel.from_checkpoint("depth.onnx", backend="onnxruntime")`` and ``predict --backend
onnxruntime`` need nothing else. Uses torch's dynamo exporter (weights in ``<OUT>.data`` next to the
graph, as torch writes them) and checks the ONNX Runtime output against torch on two input shapes.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustdepth.inference import DepthModel
from robustdepth.networks import DepthNet, ScaleZeroDisparity

ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
TOLERANCE = 1e-4  # max |Δ disparity| allowed between ONNX Runtime and torch (disparity is in (0, 1))
META_KEYS = ("height", "width", "min_depth", "max_depth")


class ExportError(RuntimeError):
    """The exported model disagrees with torch, or the export cannot run here (the message says why)."""


def require_onnx() -> None:
    """Fail with an install hint when any of onnx / onnxscript / onnxruntime is missing."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"ONNX export/inference needs {', '.join(missing)} (not installed): "
                          "pip install robustdepth[onnx]")


def export_onnx(net: DepthNet, out: str | Path, height: int, width: int, metadata: dict[str, Any] | None = None,
                check: bool = True, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Export ``net``'s scale-0 disparity to ``out`` (dynamic batch/H/W) and check it against torch.

    Returns ``{"path", "max_abs_diff", "checked_shapes"}``; raises :class:`ExportError` when the ONNX
    Runtime output differs from torch by more than ``tolerance`` on any checked shape.
    """
    require_onnx()
    if height < 64 or width < 64 or height % 32 or width % 32:
        raise ValueError(f"export size {height}×{width}: H and W must be multiples of 32 and >= 64")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = ScaleZeroDisparity(net).float().eval().to("cpu", memory_format=torch.contiguous_format)
    example = torch.rand(2, 3, height, width)  # batch 2: a batch-1 example would pin the batch size to 1
    batch = torch.export.Dim("batch", min=1, max=1024)
    h32, w32 = torch.export.Dim("height_div_32", min=2, max=256), torch.export.Dim("width_div_32", min=2, max=256)
    with torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["image"], output_names=["disp"],
                                    dynamic_shapes={"image": {0: batch, 2: 32 * h32, 3: 32 * w32}},
                                    verbose=False)
    for key, value in {"height": height, "width": width, **(metadata or {})}.items():
        program.model.metadata_props[f"robustdepth.{key}"] = str(value)
    program.save(str(out))
    report: dict[str, Any] = {"path": out, "max_abs_diff": None, "checked_shapes": []}
    if check:
        shapes = [(1, height, width), (3, height + 32, width + 64)]
        report.update(check_onnx(model, out, shapes, tolerance))
    return report


def check_onnx(model: torch.nn.Module, path: Path, shapes: list[tuple[int, int, int]],
               tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Max |ONNX Runtime − torch| over random inputs of ``shapes`` (batch, H, W); raises above ``tolerance``."""
    session = ort_session(path)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for b, h, w in shapes:
        x = torch.rand(b, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        if got.shape != ref.shape:
            raise ExportError(f"{path}: ONNX output shape {got.shape} != torch {ref.shape} for input {(b, 3, h, w)}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if not worst <= tolerance:
        raise ExportError(f"{path}: ONNX Runtime differs from torch by {worst:.3g} > {tolerance:g}")
    return {"max_abs_diff": worst, "checked_shapes": [list(s) for s in shapes]}


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """A CPU ONNX Runtime session (intra-op threads = torch's, so comparisons are fair)."""
    require_onnx()
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's idle worker threads busy-wait by default: on a shared CPU they would steal the cores from
    # whatever runs next (torch in the same process, other users), so they sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ExportError(f"ONNX Runtime cannot load {path}: {err}") from None


class OnnxDepthModel(DepthModel):
    """:class:`DepthModel` whose network runs in ONNX Runtime (same ``infer``/``predict_*`` API)."""

    session: Any = None

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"image": x})[0]).to(self.device)

    def compile(self) -> OnnxDepthModel:
        return self  # ONNX Runtime optimises the graph itself when the session is created


def load_onnx_model(path: str | Path) -> OnnxDepthModel:
    """An :class:`OnnxDepthModel` from an ``.onnx`` file written by :func:`export_onnx` (metadata inside)."""
    session = ort_session(path)
    meta = session.get_modelmeta().custom_metadata_map
    missing = [k for k in META_KEYS if f"robustdepth.{k}" not in meta]
    if missing:
        raise ExportError(f"{path} lacks robustdepth metadata {missing}: export it with 'robustdepth export'")
    model = OnnxDepthModel(torch.nn.Identity(), int(meta["robustdepth.height"]), int(meta["robustdepth.width"]),
                           float(meta["robustdepth.min_depth"]), float(meta["robustdepth.max_depth"]),
                           torch.device("cpu"), precision="fp32", channels_last=False)
    model.session = session
    return model


def export_checkpoint(checkpoint: str | Path, out: str | Path, height: int | None = None,
                      width: int | None = None) -> dict[str, Any]:
    """Export a training checkpoint's depth network (default size: its training resolution)."""
    model = DepthModel.from_checkpoint(checkpoint, device="cpu", precision="fp32", channels_last=False)
    meta = {"min_depth": model.min_depth, "max_depth": model.max_depth, "checkpoint": Path(checkpoint).name}
    report = export_onnx(model.net, out, height or model.height, width or model.width, metadata=meta)
    if height or width:  # the model still resizes inputs to this size at inference
        report["note"] = f"inference size {height or model.height}×{width or model.width}"
    return report


def onnx_model_from(checkpoint: str | Path) -> OnnxDepthModel:
    """ONNX Runtime model from an ``.onnx`` file, or from a checkpoint (exported to a temporary file)."""
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        return load_onnx_model(path)
    tmp = Path(tempfile.mkdtemp(prefix="robustdepth_onnx_"))
    export_checkpoint(path, tmp / "depth.onnx")
    return load_onnx_model(tmp / "depth.onnx")
