"""``robustdepth eval-pose``: Monodepth2's pose protocol (5-frame snippet ATE) on sequences with GT poses.

    robustdepth eval-pose runs/kitti_real data.dataset=kitti_odometry data.root=ODOMETRY_ROOT \\
        data.options.sequences=[9]

The data block defaults to the checkpoint's (override it as for ``robustdepth eval``); every sequence of
the chosen dataset whose frames have GT poses (KITTI odometry ``poses/NN.txt``, the embedded world's
``poses.txt``) is scored. Writes ``results_pose.json`` (mean, std, per sequence, per snippet) next to the
checkpoint unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from robustdepth.evaluation.pose import TRACK_LENGTH, PoseResult, evaluate_motions, predict_motions


def pose_dataset(cfg: Any, split: str) -> Any:
    """Consecutive frame pairs (i, i+1) of ``split``, un-augmented, at the config's resolution."""
    from robustdepth.configure import apply_overrides
    from robustdepth.data import build_items
    from robustdepth.data.base import FrameDataset

    pair_cfg = apply_overrides(cfg, ["data.frame_ids=[0,1]"])
    items = build_items(pair_cfg, split, train=True)  # training items: every frame whose next frame exists
    return FrameDataset(items, cfg.data.height, cfg.data.width, frame_ids=[0, 1])


def load_pose_net(ckpt: dict[str, Any], source: Any, cfg: Any) -> torch.nn.Module:
    """The checkpoint's pose network (a one-line error when the run trained none)."""
    from robustdepth.checkpoint import CheckpointError, load_weights
    from robustdepth.networks import PoseNet

    if "pose" not in ckpt["models"]:
        raise CheckpointError(f"checkpoint {source} has no pose network (its recipe trained none): "
                              "nothing to evaluate with eval-pose")
    net = PoseNet(cfg.model.pose_num_layers)
    load_weights(net, ckpt["models"]["pose"], source, "pose")
    return net


def evaluate_pose_checkpoint(checkpoint: Any, overrides: list[str] | None = None, split: str = "test",
                             track_length: int = TRACK_LENGTH, device: str = "auto",
                             batch_size: int = 8) -> PoseResult:
    """Predict T_{i→i+1} for every consecutive pair and score 5-frame snippets against the GT poses."""
    from robustdepth.checkpoint import load_checkpoint
    from robustdepth.configure import apply_overrides, config_from_dict
    from robustdepth.devices import resolve_device

    ckpt = load_checkpoint(checkpoint)
    cfg = apply_overrides(config_from_dict(ckpt["config"], strict=False), list(overrides or []))
    dev = resolve_device(device)
    net = load_pose_net(ckpt, checkpoint, cfg).to(dev)
    dataset = pose_dataset(cfg, split)
    motions = predict_motions(net, dataset, dev, batch_size)
    sequences = {item.sequence.name: item.sequence for item in dataset.items}
    return evaluate_motions(motions, sequences, track_length)


def cmd_eval_pose(args: argparse.Namespace) -> int:
    result = evaluate_pose_checkpoint(args.checkpoint, args.overrides, args.split, args.track_length, args.device)
    summary = result.summary()
    out = Path(args.out or Path(args.checkpoint).resolve().parent / "results_pose.json")
    payload = {"protocol": "Monodepth2 evaluate_pose.py: ATE on snippets with per-snippet scale alignment",
               "checkpoint": str(args.checkpoint), "split": args.split, **summary,
               "ates": {k: v.tolist() for k, v in result.ates.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    for name, s in summary["sequences"].items():
        print(f"{name}: ATE {s['ate_mean']:.4f} ± {s['ate_std']:.4f} ({s['snippets']} snippets)")
    print(f"all: Trajectory error {summary['ate_mean']:.4f}, std {summary['ate_std']:.4f} "
          f"({summary['snippets']} snippets of {args.track_length} frames)")
    print(f"results: {out}")
    return 0


def add_parser(subparsers: Any) -> None:
    """``robustdepth eval-pose CHECKPOINT [KEY=VALUE …]``."""
    p = subparsers.add_parser("eval-pose", help="pose ATE on 5-frame snippets (Monodepth2's evaluate_pose)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint file or run directory (its recipe must train a pose network)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="data overrides, e.g. data.dataset=kitti_odometry data.root=ROOT data.options.sequences=[4]")
    p.add_argument("--split", default="test", help="dataset split (KITTI odometry: every split is the sequences)")
    p.add_argument("--track-length", type=int, default=TRACK_LENGTH, help="frames per snippet (MD2: 5)")
    p.add_argument("--out", help="JSON path (default results_pose.json next to the checkpoint)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval_pose)


__all__ = ["add_parser", "evaluate_pose_checkpoint", "load_pose_net", "pose_dataset"]
