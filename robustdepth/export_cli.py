"""``robustdepth export``: a checkpoint's depth network to ONNX (fp32, or int8 with calibration) and/or the
Hugging Face Hub layout. The export itself is :mod:`robustdepth.export`; int8 is :mod:`robustdepth.quantize`;
the Hub layout :mod:`robustdepth.hub`."""

from __future__ import annotations

import argparse
from typing import Any

from robustdepth.export import TOLERANCE, ExportError, export_checkpoint


def cmd_export(args: argparse.Namespace) -> int:
    import sys

    if args.hf:
        from robustdepth.hub import save_pretrained

        out = save_pretrained(args.checkpoint, args.hf)
        print(f"wrote {out}/ (config.json, model.safetensors, README.md model card)")
        if not args.onnx:
            return 0
    if not args.onnx:
        raise ExportError("give --onnx PATH and/or --hf DIR")
    if getattr(args, "int8", False):
        from robustdepth.quantize import export_int8

        if not args.calibration:
            raise ExportError("--int8 needs --calibration DIR (a folder of frames, e.g. a world split)")
        report = export_int8(args.checkpoint, args.onnx, args.calibration, args.calibration_frames,
                             args.height, args.width)
        print(f"wrote {report['path']} (int8 QDQ, per-channel; {report['quantized_nodes']} quantised tensors, "
              f"calibrated on {report['calibration_frames']} frames)")
        return 0
    try:
        report = export_checkpoint(args.checkpoint, args.onnx, args.height, args.width)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report['path']} (+ {report['path'].name}.data); ONNX Runtime vs torch max |Δdisp| = "
          f"{report['max_abs_diff']:.2e} on shapes {report['checked_shapes']} (tolerance {TOLERANCE:g})")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="export the depth network to ONNX", description=(
        "Export a checkpoint's depth network to ONNX (dynamo exporter; dynamic batch, height and width; "
        "scale-0 disparity output) and check ONNX Runtime against torch (max |Δ| <= 1e-4); --hf DIR writes the "
        "Hugging Face Hub layout (config.json, model.safetensors, model card) instead or as well. "
        "Needs: pip install robustdepth[onnx]."))
    p.add_argument("checkpoint", help="checkpoint file or run directory")
    p.add_argument("--onnx", help="output .onnx path (weights go to <path>.data)")
    p.add_argument("--hf", metavar="DIR", help="also/instead write a Hugging Face Hub directory: config.json + "
                   "model.safetensors + README.md model card (robustdepth.hub.from_pretrained loads it)")
    p.add_argument("--height", type=int, help="example/inference height (default: the training height)")
    p.add_argument("--width", type=int, help="example/inference width (default: the training width)")
    p.add_argument("--int8", action="store_true", help="write an int8 model (ONNX Runtime static quantisation, QDQ, "
                   "per-channel weights; robustdepth/quantize.py) instead of fp32; needs --calibration")
    p.add_argument("--calibration", metavar="DIR", help="frames (searched recursively) whose activation ranges "
                   "calibrate --int8, e.g. data/world/small/val")
    p.add_argument("--calibration-frames", type=int, default=32, help="at most this many calibration frames")
    p.set_defaults(func=cmd_export)
