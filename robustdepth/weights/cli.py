"""``robustdepth weights import LAYOUT SRC --out RUN``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_import(args: argparse.Namespace) -> int:
    from robustdepth.weights.importers import LAYOUTS, import_weights

    ckpt = import_weights(args.layout, args.src, args.out, list(args.overrides))
    record = json.loads((Path(args.out) / "IMPORT.json").read_text())
    print(f"imported {args.layout} weights from {args.src} → {ckpt}")
    print(f"licence: {LAYOUTS[args.layout].licence}")
    for note in record["notes"]:
        print(f"note: {note}")
    print(f"next: robustdepth eval {args.out}  |  robustdepth predict {args.out} FRAMES --out preds")
    return 0


def add_parser(subparsers: Any) -> None:
    from robustdepth.weights.importers import LAYOUTS

    p = subparsers.add_parser("weights", help="import released weights (Monodepth2, md4all, ACDepth, …)",
                              description="Convert the field's released depth weights into robustdepth checkpoints.")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    q = sub.add_parser("import", help="turn released files into a robustdepth run directory", description=(
        "Read released weights (" + ", ".join(f"{k}: {v.url}" for k, v in LAYOUTS.items()) + ") into RUN/checkpoints/"
        "last.pt, which eval, predict, export, bench corruptions and providers.teacher.checkpoint accept. "
        "Lightning .ckpt files are read without running code. RUN/IMPORT.json records source, hashes and licence."))
    q.add_argument("layout", choices=sorted(LAYOUTS), help="the release's layout")
    q.add_argument("src", help="the released folder (encoder.pth, depth.pth, …) or .ckpt file")
    q.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides stored with the weights "
                   "(e.g. data.root=/data/kitti data.dataset=kitti eval.protocol=kitti_eigen)")
    q.add_argument("--out", required=True, help="run directory to create")
    q.set_defaults(func=cmd_import)
