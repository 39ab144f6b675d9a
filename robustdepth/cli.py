"""The ``robustdepth`` command: one entry point, one subcommand per job.

Each subcommand lives next to the code it drives; this module only parses arguments and turns
expected failures (bad config, unreadable data, foreign checkpoints, a diverged run) into one
clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
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
    "robustdepth.export_cli",
    "robustdepth.providers.cli",
    "robustdepth.data.cli",
    "robustdepth.evaluation.pose_cli",
    "robustdepth.pipeline_cli",
    "robustdepth.weights.cli",
    "robustdepth.app",
)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. optim.lr=2e-4 data.root=data/world/small "
                        "(see 'robustdepth config RECIPE' for every key)")


def _config_errors_as_one_line(build: Callable[[], Any]) -> Any:
    """Run a config-building call; a plain ValueError from a component's config is a ConfigError."""
    from robustdepth.checkpoint import CheckpointError
    from robustdepth.config import ConfigError
    from robustdepth.data.base import DataError

    try:
        return build()
    except (ConfigError, DataError, CheckpointError):
        raise
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from err


def cmd_train(args: argparse.Namespace) -> int:
    from robustdepth.checkpoint import load_checkpoint
    from robustdepth.configure import apply_overrides, config_from_dict, load_config
    from robustdepth.training.trainer import train

    overrides = list(args.overrides)
    if args.recipe and "=" in args.recipe:  # `train --resume RUN key=value`: no recipe, only overrides
        overrides.insert(0, args.recipe)
        args.recipe = None
    if args.resume:
        if args.recipe:
            raise SystemExit("error: --resume continues the stored config; give overrides, not a recipe")
        stored = load_checkpoint(args.resume)["config"]
        cfg = _config_errors_as_one_line(lambda: apply_overrides(config_from_dict(stored), overrides))
        resume = Path(args.resume)
        run_dir = args.run_dir or (resume.parent.parent if resume.is_file() else resume)
    else:
        if not args.recipe:
            raise SystemExit("error: give a RECIPE (e.g. monodepth2) or --resume RUN_DIR")
        cfg = _config_errors_as_one_line(lambda: load_config(args.recipe, overrides))
        run_dir = args.run_dir
    if args.stop_at is not None and args.stop_at < 1:
        raise _usage_error(f"--stop-at {args.stop_at}: must be >= 1")
    last = train(cfg, run_dir=run_dir, resume=args.resume, stop_at=args.stop_at, overwrite=args.overwrite)
    if last is not None:
        print(f"checkpoint: {last}")
    return 0


def _usage_error(message: str) -> Exception:
    from robustdepth.config import ConfigError

    return ConfigError(message)


def cmd_eval(args: argparse.Namespace) -> int:
    from robustdepth.configure import apply_overrides
    from robustdepth.evaluation import PROTOCOLS, get_protocol
    from robustdepth.evaluation.report import print_table
    from robustdepth.inference import DepthModel

    if args.max_frames < 0:
        raise _usage_error(f"--max-frames {args.max_frames}: must be >= 0 (0 = every frame)")
    if args.batch_size is not None and args.batch_size < 1:
        raise _usage_error(f"--batch-size {args.batch_size}: must be >= 1")
    if args.protocol is not None and args.protocol not in PROTOCOLS:
        raise _usage_error(f"--protocol {args.protocol!r} is not a protocol; known: {', '.join(sorted(PROTOCOLS))}")
    from robustdepth.checkpoint import pick_checkpoint

    checkpoint_file = pick_checkpoint(args.checkpoint, args.pick)
    model = DepthModel.from_checkpoint(checkpoint_file, device=args.device)
    cfg = _config_errors_as_one_line(lambda: apply_overrides(model.config, args.overrides))
    if cfg.eval.protocol not in PROTOCOLS and args.protocol is None:
        raise _usage_error(f"eval.protocol={cfg.eval.protocol!r} is not a protocol; "
                           f"known: {', '.join(sorted(PROTOCOLS))}")
    from robustdepth.evaluation.anydata import ProtocolFlags, apply_protocol_flags, evaluate_and_write

    flags = ProtocolFlags(args.min_depth, args.max_depth, args.scaling, args.scale, args.crop)
    protocol = _config_errors_as_one_line(
        lambda: apply_protocol_flags(get_protocol(args.protocol or cfg.eval.protocol), flags))
    if protocol.crop != "none" and cfg.data.dataset == "folder":
        print(f"warning: protocol {protocol.name!r} applies the {protocol.crop} crop (made for KITTI) to a folder; "
              "--crop none or --protocol generic if that is not meant", file=sys.stderr)
    summary, floor, out = evaluate_and_write(
        model, cfg, protocol, args.checkpoint, checkpoint_file, split=args.split, out=args.out,
        max_frames=args.max_frames, post_process=True if args.post_process else None,
        crop_to_aspect=args.crop_to_aspect, batch_size=args.batch_size)
    print_table(summary)
    print(f"constant-depth floor (one depth everywhere): AbsRel {floor['all']['abs_rel']:.4f} over all frames")
    print(f"results: {out}")
    return 0


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    """Protocol fields, cropping and batching of ``eval`` (robustdepth.evaluation.anydata)."""
    p.add_argument("--min-depth", type=float, help="GT validity / clamp minimum in metres (protocol's by default)")
    p.add_argument("--max-depth", type=float, help="GT validity / clamp maximum in metres")
    p.add_argument("--scaling", choices=("median", "none", "fixed"),
                   help="per-image median scaling, none (metric models) or a fixed factor (--scale)")
    p.add_argument("--scale", type=float, help="fixed factor applied to predictions (implies --scaling fixed)")
    p.add_argument("--crop", choices=("none", "garg", "eigen"), help="GT evaluation crop")
    p.add_argument("--crop-to-aspect", action="store_true",
                   help="centre-crop frames and GT to the model's aspect ratio before resizing (default: squash)")
    p.add_argument("--batch-size", type=int, help="frames per network call (default eval.batch_size); "
                                                  "frames of mixed sizes are fine at any batch size")
    p.add_argument("--pick", choices=("last", "best"), default="last",
                   help="which checkpoint of a run directory: last.pt or best.pt (train.keep_best)")


def cmd_predict(args: argparse.Namespace) -> int:
    from robustdepth.checkpoint import pick_checkpoint
    from robustdepth.inference import DepthModel
    from robustdepth.outputs import parse_formats, predict_outputs

    formats = parse_formats(args.format)  # before the model loads: a typo costs nothing
    model = DepthModel.from_checkpoint(pick_checkpoint(args.checkpoint, args.pick), device=args.device,
                                       precision=args.precision, backend=args.backend)
    skipped: list[str] = []
    written = predict_outputs(model, args.inputs, Path(args.out), formats=formats, panel=args.panel,
                              post_process=args.post_process, video_out=args.video_out, pointcloud=args.pointcloud,
                              intrinsics=args.intrinsics, pointcloud_stride=args.pointcloud_stride,
                              skipped=None if args.strict else skipped)
    print(f"wrote {len(written)} depth map(s) ({', '.join(formats)}) to {args.out}"
          + (f"; video {args.video_out}" if args.video_out else ""))
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable frame(s): {'; '.join(skipped[:5])}"
              f"{' …' if len(skipped) > 5 else ''}", file=sys.stderr)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from robustdepth.config import to_yaml
    from robustdepth.configure import load_config

    print(to_yaml(load_config(args.recipe, args.overrides)), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from robustdepth.demo import DemoPlan, run_demo
    from robustdepth.training.stages import RunMismatchError

    plan = DemoPlan.quick() if args.quick else DemoPlan()
    if args.fp32:
        plan.fast = False
    try:
        report = run_demo(Path(args.out), plan=plan)
    except RunMismatchError as err:  # most often: a demo trained before in the other precision
        other = "`robustdepth demo` (without --fp32)" if args.fp32 else "`robustdepth demo --fp32`"
        raise RunMismatchError(f"{err} (if that demo was trained in the other precision, {other} reuses it)") from err
    print(f"demo report: {report}")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser. ``command`` (the subcommand about to run, if known) limits the extension modules
    imported to that one (robustdepth.cli_lazy): help and argument errors stay fast."""
    from robustdepth import __version__
    from robustdepth.cli_lazy import IntermixedParser

    parser = IntermixedParser(
        prog="robustdepth",
        description="Self-supervised monocular depth that stays accurate at night and in rain, fog and snow.")
    parser.add_argument("--version", action="version", version=f"robustdepth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=IntermixedParser)

    p = sub.add_parser("train", help="train a recipe", description=(
        "Train from a recipe (a name in recipes/ or a YAML path) with KEY=VALUE overrides. The run directory "
        "(default runs/<train.name>) gets config.yaml, TensorBoard logs and checkpoints. --resume RUN_DIR|CKPT "
        "continues exactly where a run stopped (same config unless overridden)."))
    p.add_argument("recipe", nargs="?", help="recipe name or path (optional with --resume)")
    _add_overrides(p)
    p.add_argument("--run-dir", help="where logs and checkpoints go (default runs/<train.name>)")
    p.add_argument("--resume", help="run directory or checkpoint to continue from")
    p.add_argument("--stop-at", type=int, help="stop (with a checkpoint) at this step, e.g. to split a long run")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the run directory (its checkpoints, logs and config are "
                        "deleted); without it an existing run is refused unless --resume continues it")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint per condition", description=(
        "Evaluate a checkpoint on a dataset split under an evaluation protocol (robustdepth.evaluation.PROTOCOLS; "
        "default: the one in the checkpoint's config). The data config defaults to the checkpoint's; override "
        "it with KEY=VALUE (e.g. data.root=... data.dataset=kitti). Writes results.json and prints a table."))
    p.add_argument("checkpoint", help="checkpoint file or run directory")
    _add_overrides(p)
    p.add_argument("--split", help="dataset split (default eval.split)")
    p.add_argument("--protocol", help="protocol name, e.g. world, generic, kitti_eigen, nuscenes_md4all")
    p.add_argument("--out", help="results JSON path (default RUN/eval/<checkpoint>__<dataset>__<split>__<protocol>"
                                 ".json: one file per model x dataset x protocol)")
    _add_eval_flags(p)
    p.add_argument("--max-frames", type=int, default=0, help="evaluate only the first N frames")
    p.add_argument("--post-process", action="store_true", help="Monodepth2 flip post-processing")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="depth maps for images, folders or videos", description=(
        "Predict depth for image files, folders of images, video files and .txt lists of them, at each input's "
        "resolution. --format picks the files: npy (<name>_depth.npy, float32), png16 (<name>_depth16.png, "
        "uint16 metres x 256, KITTI), gray (<name>_gray.png, near = bright), color (<name>_disp.png, magma). "
        "See docs/usage.md."))
    p.add_argument("checkpoint", help="checkpoint file or run directory")
    p.add_argument("inputs", nargs="+", help="image files, folders, videos or .txt lists (one path per line)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="npy,color", help="comma-separated subset of npy,png16,gray,color "
                                                         "(default npy,color)")
    p.add_argument("--video-out", help="also write one side-by-side image | depth mp4 (OpenCV mp4v) of every frame")
    p.add_argument("--pointcloud", action="store_true", help="also write <name>.ply (coloured points from depth "
                                                             "and K)")
    p.add_argument("--intrinsics", help="K for --pointcloud: fx,fy,cx,cy in pixels of the inputs, or a file "
                                        "(default: intrinsics.txt beside the images)")
    p.add_argument("--pointcloud-stride", type=int, default=1, help="keep every N-th pixel in each direction")
    p.add_argument("--pick", choices=("last", "best"), default="last",
                   help="which checkpoint of a run directory: last.pt or best.pt (train.keep_best)")
    p.add_argument("--panel", action="store_true", help="also write image | depth panels")
    p.add_argument("--post-process", action="store_true", help="Monodepth2 flip post-processing")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 where the device has native bf16 (AVX512-BF16 / AMX CPUs, Ampere+ GPUs), "
                        "else fp32; "
                        "fp32 reproduces the checkpoint's evaluation exactly")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable frame (default: skip it and list the skipped frames at the end)")
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
    p.add_argument("--fp32", action="store_true",
                   help="train in fp32 (default: through the +fast overlay where the device has native bf16)")
    p.set_defaults(func=cmd_demo)

    from robustdepth.cli_lazy import add_extension_commands

    add_extension_commands(sub, EXTENSION_COMMANDS, command)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures caused by the user's input or environment (not bugs): one line, exit status 2.

    ``OSError`` covers missing files, permissions and a full disk (checkpoint writes name the file).
    """
    from robustdepth.checkpoint import CheckpointError
    from robustdepth.config import ConfigError
    from robustdepth.data.base import DataError
    from robustdepth.export import ExportError
    from robustdepth.inference import InferenceError
    from robustdepth.training.rundir import RunDirError
    from robustdepth.training.trainer import TrainingDiverged
    from robustdepth.world.cli import WorldArgumentError

    return (ConfigError, DataError, CheckpointError, TrainingDiverged, ExportError, RunDirError, InferenceError,
            WorldArgumentError, OSError)


def one_line(err: BaseException) -> str:
    """An expected error as one line: a DataLoader worker's wrapped traceback reduced to the original
    message, any other line breaks folded into spaces."""
    from robustdepth.data.base import unwrap_worker_error

    return " ".join(str(unwrap_worker_error(err)).split())


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from robustdepth.cli_lazy import command_of

    args = build_parser(command_of(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except expected_errors() as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
