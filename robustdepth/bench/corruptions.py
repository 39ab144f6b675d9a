"""``robustdepth bench corruptions``: the RoboDepth (KITTI-C) corruption benchmark on any checkpoint.

The clear frames of a dataset split are corrupted with RoboDepth's 18 corruptions × 5 severities;
each corrupted frame is predicted and scored against the clean frame's GT under the chosen
protocol; DEE, CE (vs a reference model), mCE, RR and mRR follow RoboDepth exactly. The default
reference is RoboDepth's published MonoDepth2-R18 KITTI-C row; any earlier results file of this
command can serve as the reference instead (``--reference path.json``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def clear_frames(cfg: Any, split: str, max_frames: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(H×W×3 uint8 image, GT depth) of the split's clear frames, evenly spaced when limited."""
    from robustdepth.data import build_items

    items = [it for it in build_items(cfg, split, train=False) if it.condition == "clear"]
    if not items:
        raise ValueError(f"split {split!r} of {cfg.data.root} has no clear frames with GT to corrupt")
    if max_frames and len(items) > max_frames:
        items = [items[i] for i in np.linspace(0, len(items) - 1, max_frames).round().astype(int)]
    for item in items:
        gt = item.sequence.depth_gt(item.index, item.condition)
        if gt is None:
            raise ValueError(f"{item.sequence.name} frame {item.index} has no GT depth")
        yield np.asarray(item.sequence.load_image(item.index, item.condition)), gt


def run(checkpoint: str, data_root: str | None, split: str, reference: str, protocol_name: str | None,
        out: Path, max_frames: int, corruptions: list[str] | None, severities: list[int]) -> dict[str, Any]:
    from robustdepth.configure import apply_overrides
    from robustdepth.evaluation import get_protocol
    from robustdepth.evaluation.corruptions import CORRUPTIONS
    from robustdepth.evaluation.evaluate import evaluate_frame
    from robustdepth.evaluation.robodepth import (
        format_corruption_table,
        load_reference,
        plot_dee_vs_severity,
        run_corruption_benchmark,
        save_scores,
        score_results,
    )
    from robustdepth.inference import DepthModel

    model = DepthModel.from_checkpoint(checkpoint)
    cfg = apply_overrides(model.config, [f"data.root={data_root}"] if data_root else [])
    protocol = get_protocol(protocol_name or cfg.eval.protocol)
    raw = run_corruption_benchmark(
        model.infer, clear_frames(cfg, split, max_frames), lambda gt, pred: evaluate_frame(gt, pred, protocol),
        corruptions=corruptions or CORRUPTIONS, severities=severities)
    scores = score_results(raw["per_corruption"], raw["clean"], load_reference(reference), name=str(checkpoint))
    out.mkdir(parents=True, exist_ok=True)
    save_scores(scores, out / "corruptions.json")
    table = format_corruption_table(scores)
    header = (f"# Corruption benchmark (RoboDepth protocol)\n\nCheckpoint `{checkpoint}`, data `{cfg.data.root}` "
              f"split `{split}` ({raw['num_frames']} clear frames), evaluation protocol `{protocol.name}`, "
              f"reference `{reference}`.\n\n")
    (out / "corruptions.md").write_text(header + table + "\n")
    plot_dee_vs_severity(scores, out / "corruptions_dee.png")
    (out / "corruptions_raw.json").write_text(json.dumps(raw, indent=2, default=float))
    print(table)
    return scores


def _cmd(args: argparse.Namespace) -> int:
    run(args.checkpoint, args.data, args.split, args.reference, args.protocol, Path(args.out), args.max_frames,
        args.corruptions, args.severities)
    print(f"results: {args.out}/corruptions.{{json,md}}, plot corruptions_dee.png")
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("corruptions", help="RoboDepth KITTI-C corruption benchmark", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    p.add_argument("--data", help="dataset root (default: the checkpoint's data.root)")
    p.add_argument("--split", default="test")
    p.add_argument("--reference", default="monodepth2_r18",
                   help="named reference (monodepth2_r18) or a corruptions.json written by this command")
    p.add_argument("--protocol", help="evaluation protocol (default: the checkpoint's eval.protocol)")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--max-frames", type=int, default=0, help="use N evenly spaced clear frames (0 = all)")
    p.add_argument("--corruptions", nargs="+", help="subset of the 18 corruptions (default all)")
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.set_defaults(func=_cmd)
