"""``robustdepth priors histogram CHECKPOINT --out FILE``: Syn2Real's day-clear depth-histogram prior."""

from __future__ import annotations

import argparse
from typing import Any

from robustdepth.providers.histogram import DEFAULT_BINS, DEFAULT_RANGE


def cmd_histogram(args: argparse.Namespace) -> int:
    from robustdepth.training.day_histogram import compute_day_histogram

    out = compute_day_histogram(args.checkpoint, args.out, bins=args.bins, min_depth=args.min_depth,
                                max_depth=args.max_depth, overrides=args.overrides, split=args.split,
                                max_frames=args.max_frames)
    print(f"day depth histogram: {out}")
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("histogram", help="Syn2Real day-clear depth histogram from a frozen model", description=(
        "Run a trained (day-clear) checkpoint on every day-clear frame of the training split (with the "
        "dataset's training filters) and store the soft depth histogram Syn2Real's KL prior compares against "
        "(losses.syn2real_kl.prior_path)."))
    p.add_argument("checkpoint", help="checkpoint file or run directory of the day-clear model")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="data overrides (default: the checkpoint's)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--bins", type=int, default=DEFAULT_BINS, help="number of bins N (nuScenes 257, RobotCar 101)")
    p.add_argument("--min-depth", type=float, default=DEFAULT_RANGE[0], help="first bin centre (m)")
    p.add_argument("--max-depth", type=float, default=DEFAULT_RANGE[1], help="last bin centre (m)")
    p.add_argument("--split", help="split to pool over (default data.train_split)")
    p.add_argument("--max-frames", type=int, default=0, help="use only the first N frames (0 = all)")
    p.set_defaults(func=cmd_histogram)
