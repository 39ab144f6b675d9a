"""The ``robustdepth`` command: one entry point, one subcommand per job.

Each subcommand lives next to the code it drives; this module only parses arguments and turns
expected failures (bad config, unreadable data, foreign checkpoints, a diverged run) into one
clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Optional subcommand modules: each provides add_parser(subparsers); absent ones are skipped.
EXTENSION_COMMANDS = (
    "robustdepth.world.cli",
    "robustdepth.degrade.cli",
    "robustdepth.bench",
    "robustdepth.export",
    "robustdepth.priors.cli",
    "robustdepth.data.cli",
    "robustdepth.pipeline_cli",
)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. optim.lr=2e-4 data.root=data/world/small "
                        "(see 'robustdepth config RECIPE' for every key)")


def cmd_train(args: argparse.Namespace) -> int:
    from robustdepth.config import apply_overrides, config_from_dict, load_config
    from robustdepth.training.checkpoint import load_checkpoint
    from robustdepth.training.trainer import train

    overrides = list(args.overrides)
    if args.recipe and "=" in args.recipe:  # `train --resume RUN key=value`: no recipe, only overrides
        overrides.insert(0, args.recipe)
        args.recipe = None
    if args.resume:
        if args.recipe:
            raise SystemExit("error: --resume continues the stored config; give overrides, not a recipe")
        cfg = apply_overrides(config_from_dict(load_checkpoint(args.resume)["config"]), overrides)
        resume = Path(args.resume)
        run_dir = args.run_dir or (resume.parent.parent if resume.is_file() else resume)
    else:
        if not args.recipe:
            raise SystemExit("error: give a RECIPE (e.g. monodepth2) or --resume RUN_DIR")
        cfg = load_config(args.recipe, overrides)
        run_dir = args.run_dir
    last = train(cfg, run_dir=run_dir, resume=args.resume, stop_at=args.stop_at)
    if last is not None:
        print(f"checkpoint: {last}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from robustdepth.config import apply_overrides, to_dict
    from robustdepth.evaluation import get_protocol, write_results
    from robustdepth.evaluation.report import print_table
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.inference import DepthModel

    model = DepthModel.from_checkpoint(args.checkpoint, device=args.device)
    cfg = apply_overrides(model.config, args.overrides)
    protocol = get_protocol(args.protocol or cfg.eval.protocol)
    evaluator = evaluate_model(model, cfg, protocol, split=args.split, max_frames=args.max_frames,
                               post_process=True if args.post_process else None)
    summary = evaluator.summary()
    out = Path(args.out or Path(args.checkpoint).resolve().parent / f"results_{protocol.name}.json")
    write_results(out, summary, protocol, extra={"checkpoint": str(args.checkpoint),
                                                 "split": args.split or cfg.eval.split,
                                                 "data": to_dict(cfg)["data"]})
    print_table(summary)
    print(f"results: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from robustdepth.inference import DepthModel, predict_to_folder

    model = DepthModel.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision,
                                       backend=args.backend)
    written = predict_to_folder(model, args.inputs, Path(args.out), panel=args.panel,
                                post_process=args.post_process)
    print(f"wrote {len(written)} depth map(s) to {args.out}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from robustdepth.config import load_config, to_yaml

    print(to_yaml(load_config(args.recipe, args.overrides)), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from robustdepth.demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick)
    print(f"demo report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from robustdepth import __version__

    parser = argparse.ArgumentParser(
        prog="robustdepth",
        description="Self-supervised monocular depth that stays accurate at night and in rain, fog and snow.")
    parser.add_argument("--version", action="version", version=f"robustdepth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a recipe", description=(
        "Train from a recipe (a name in recipes/ or a YAML path) with KEY=VALUE overrides. The run directory "
        "(default runs/<train.name>) gets config.yaml, TensorBoard logs and checkpoints. --resume RUN_DIR|CKPT "
        "continues exactly where a run stopped (same config unless overridden)."))
    p.add_argument("recipe", nargs="?", help="recipe name or path (optional with --resume)")
    _add_overrides(p)
    p.add_argument("--run-dir", help="where logs and checkpoints go (default runs/<train.name>)")
    p.add_argument("--resume", help="run directory or checkpoint to continue from")
    p.add_argument("--stop-at", type=int, help="stop (with a checkpoint) at this step, e.g. to split a long run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint per condition", description=(
        "Evaluate a checkpoint on a dataset split under an evaluation protocol (robustdepth.evaluation.PROTOCOLS; "
        "default: the one in the checkpoint's config). The data config defaults to the checkpoint's; override "
        "it with KEY=VALUE (e.g. data.root=... data.dataset=kitti). Writes results.json and prints a table."))
    p.add_argument("checkpoint", help="checkpoint file or run directory")
    _add_overrides(p)
    p.add_argument("--split", help="dataset split (default eval.split)")
    p.add_argument("--protocol", help="protocol name, e.g. world, kitti_eigen, nuscenes_md4all")
    p.add_argument("--out", help="results.json path (default next to the checkpoint)")
    p.add_argument("--max-frames", type=int, default=0, help="evaluate only the first N frames")
    p.add_argument("--post-process", action="store_true", help="Monodepth2 flip post-processing")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="depth maps for images, folders or videos", description=(
        "Predict depth for image files, folders of images and video files. Writes <name>_depth.npy (float32, "
        "input resolution) and <name>_disp.png (magma, Monodepth2 normalisation), plus a side-by-side panel."))
    p.add_argument("checkpoint", help="checkpoint file or run directory")
    p.add_argument("inputs", nargs="+", help="image files, folders or videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--panel", action="store_true", help="also write image | depth panels")
    p.add_argument("--post-process", action="store_true", help="Monodepth2 flip post-processing")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 where the device has native bf16 (AVX512-BF16 / AMX CPUs, Ampere+ GPUs), "
                        "else fp32; "
                        "fp32 reproduces the checkpoint's evaluation exactly")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="onnxruntime: CPU, fp32 (CHECKPOINT may be an .onnx from 'robustdepth export')")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("config", help="print the resolved configuration", description=(
        "Print every key of the resolved config (schema defaults <- recipe chain <- overrides) as YAML."))
    p.add_argument("recipe", nargs="?", help="recipe name or path (default: schema defaults)")
    _add_overrides(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("demo", help="the main job end to end (make demo)", description=(
        "Generate the small all-weather world, train the baseline and a robust recipe briefly, evaluate per "
        "condition, predict on real frames from ../shared/realdata when present, and write a report."))
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    p.set_defaults(func=cmd_demo)

    for module in EXTENSION_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and module.startswith(err.name):
                continue  # that part of the package is not installed / not written
            raise
        add: Callable[[Any], None] | None = getattr(mod, "add_parser", None)
        if add is not None:
            add(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    from robustdepth.config import ConfigError
    from robustdepth.data.base import DataError
    from robustdepth.export import ExportError
    from robustdepth.training.checkpoint import CheckpointError
    from robustdepth.training.trainer import TrainingDiverged

    return (ConfigError, DataError, CheckpointError, TrainingDiverged, ExportError, FileNotFoundError)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _expected_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
