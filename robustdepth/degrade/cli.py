"""``robustdepth degrade``: write an offline degraded training set; preview translators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _write(args: argparse.Namespace) -> int:
    from robustdepth.config import load_config
    from robustdepth.degrade.supply import write_offline_set

    cfg = load_config(args.recipe, args.overrides)
    out = write_offline_set(cfg, Path(args.out), list(args.conditions), severity=args.severity, seed=args.seed)
    print(f"offline degraded set: {out} (use degrade.mode=offline degrade.offline_root={out})")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("degrade", help="offline degraded training sets", description=(
        "Image-space weather translators (robustdepth.degrade). 'write' translates every training target frame "
        "of a recipe's dataset once per condition, at the training resolution, pixel-aligned, like md4all's "
        "offline ForkGAN sets; train on it with degrade.mode=offline degrade.offline_root=OUT."))
    commands = p.add_subparsers(dest="degrade_command", metavar="SUBCOMMAND", required=True)
    w = commands.add_parser("write", help="write an offline degraded set", description=(
        "Write OUT/<sequence>/<condition>/<frame>.png for every training frame of RECIPE's dataset "
        "(resumable: existing files are kept)."))
    w.add_argument("recipe", help="recipe whose dataset and resolution to use")
    w.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    w.add_argument("--out", required=True, help="output root")
    w.add_argument("--conditions", nargs="+", default=["night", "rain", "fog", "snow"])
    w.add_argument("--severity", type=float, default=1.0)
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=_write)
