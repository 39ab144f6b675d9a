"""int8 inference: static quantisation of the exported depth network through ONNX Runtime.

    robustdepth export runs/demo/baseline --onnx depth_int8.onnx --int8 --calibration data/world/small/val
    robustdepth predict depth_int8.onnx frames/ --out preds --backend onnxruntime

The fp32 graph from :func:`robustdepth.export.export_onnx` is quantised with
``onnxruntime.quantization.quantize_static``: QDQ format (QuantizeLinear/DequantizeLinear pairs that ORT
fuses into int8 convolutions, the VNNI dot-product path on x86 CPUs that have it), weights int8 per output
channel (symmetric), activations uint8 per tensor with ranges calibrated (min/max) on real frames resized to
the network resolution exactly as inference resizes them. The final sigmoid's output stays fp32 and the
model keeps the ``robustdepth.*`` metadata (plus ``robustdepth.precision = int8``), so
:func:`robustdepth.export.load_onnx_model` and ``predict --backend onnxruntime`` load it like the fp32 export.
Its accuracy change against fp32 is measured by ``benchmarks/speed.py --sections int8`` (docs/results/speed.md)
and pinned loosely by tests/test_quantize.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robustdepth.config import ConfigError
from robustdepth.data.base import read_rgb
from robustdepth.data.folder import IMAGE_SUFFIXES
from robustdepth.inference import image_to_tensor

DEFAULT_CALIBRATION_FRAMES = 32  # enough for stable min/max ranges; calibration time grows linearly


def calibration_files(root: str | Path, max_frames: int = DEFAULT_CALIBRATION_FRAMES) -> list[Path]:
    """Up to ``max_frames`` image files under ``root`` (recursive), evenly spaced over the sorted list,
    so every sequence and weather condition of a world split contributes."""
    root = Path(root)
    if max_frames < 1:
        raise ConfigError(f"calibration frames must be >= 1, got {max_frames}")
    if not root.is_dir():
        raise ConfigError(f"calibration folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under calibration folder {root}")
    picks = np.linspace(0, len(files) - 1, num=min(max_frames, len(files))).round().astype(int)
    return [files[i] for i in sorted(set(picks.tolist()))]


def network_input(path: Path, height: int, width: int) -> np.ndarray:
    """One frame as the network sees it at inference (1×3×H×W float32, bilinear + antialias resize)."""
    tensor = image_to_tensor(np.asarray(read_rgb(path)))
    resized = F.interpolate(tensor[None], size=(height, width), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.numpy().astype(np.float32)


class FrameReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over calibration frames (one frame per call)."""

    def __init__(self, files: list[Path], height: int, width: int) -> None:
        self.files, self.height, self.width = files, height, width
        self._iter: Iterator[Path] = iter(files)

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._iter, None)
        return None if path is None else {"image": network_input(path, self.height, self.width)}

    def rewind(self) -> None:
        self._iter = iter(self.files)


def quantize_onnx(fp32_path: str | Path, out: str | Path, calibration: str | Path,
                  max_frames: int = DEFAULT_CALIBRATION_FRAMES, per_channel: bool = True) -> dict[str, Any]:
    """int8 QDQ copy of an exported fp32 model (``export_onnx``'s output, metadata inside) at ``out``.

    Returns ``{"path", "calibration_frames", "quantized_nodes"}``. The network resolution comes from the
    fp32 model's ``robustdepth.height/width`` metadata; calibration frames are resized to it.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out = Path(fp32_path), Path(out)
    source = onnx.load(str(fp32_path))
    meta = {p.key: p.value for p in source.metadata_props}
    if "robustdepth.height" not in meta:
        raise ConfigError(f"{fp32_path} lacks robustdepth metadata: export it with 'robustdepth export' first")
    files = calibration_files(calibration, max_frames)
    height, width = int(meta["robustdepth.height"]), int(meta["robustdepth.width"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="robustdepth_int8_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), FrameReader(files, height, width), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    model = onnx.load(str(out))
    del model.metadata_props[:]
    for key, value in {**meta, "robustdepth.precision": "int8",
                       "robustdepth.calibration_frames": str(len(files))}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(out))
    quantized = sum(node.op_type == "QuantizeLinear" for node in model.graph.node)
    return {"path": out, "calibration_frames": len(files), "quantized_nodes": quantized}


def export_int8(checkpoint: str | Path, out: str | Path, calibration: str | Path,
                max_frames: int = DEFAULT_CALIBRATION_FRAMES, height: int | None = None,
                width: int | None = None) -> dict[str, Any]:
    """Export a checkpoint to ONNX (checked against torch), then write its int8 quantisation at ``out``."""
    from robustdepth.export import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="robustdepth_fp32_") as tmp:
        fp32 = Path(tmp) / "depth.onnx"
        report = export_checkpoint(checkpoint, fp32, height, width)
        quantized = quantize_onnx(fp32, out, calibration, max_frames)
        shutil.rmtree(tmp, ignore_errors=True)
    return {**quantized, "fp32_max_abs_diff": report["max_abs_diff"]}


def median_relative_depth_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Median over pixels of |d_other − d_ref| / d_ref (the int8-vs-fp32 closeness measure)."""
    return float(((other - reference).abs() / reference).median())
