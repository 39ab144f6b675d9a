"""``robustdepth world``: generate the all-weather world and look at it.

The main ``robustdepth`` command hooks this in with :func:`add_parser`; it also runs on its own:
``python -m robustdepth.world.cli generate --preset tiny --seed 0 --out data/world_tiny``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustdepth.world.presets import CONDITIONS, PRESETS


def _preset_help() -> str:
    rows = []
    for p in PRESETS.values():
        train = p.splits["train"]
        test = p.splits["test"]
        rows.append(f"{p.name}: {p.height}x{p.width}, train {train.sequences}x{train.frames} clear, "
                    f"test {test.sequences}x{test.frames} in {len(test.conditions)} conditions")
        rows.append("; ")
    return "".join(rows[:-1])


class WorldArgumentError(ValueError):
    """A ``robustdepth world`` argument out of range, or a world root that is not usable (one line)."""


def _check_generate_args(args: argparse.Namespace) -> None:
    if args.seed < 0:
        raise WorldArgumentError(f"--seed {args.seed}: must be >= 0")
    if args.workers < 1:
        raise WorldArgumentError(f"--workers {args.workers}: must be >= 1")


def _generate(args: argparse.Namespace) -> int:
    _check_generate_args(args)  # before the renderer's (torch) import: a bad argument answers at once
    from robustdepth.world.writer import WorldExistsError, generate

    try:
        out = generate(args.preset, args.seed, Path(args.out), progress=not args.quiet, workers=args.workers)
    except WorldExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote world {args.preset!r} (seed {args.seed}) to {out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from robustdepth.world.gallery import show

    root = Path(args.root)
    if not (root / "world.json").is_file():
        raise WorldArgumentError(f"{root} is not a world root (no world.json); make one with "
                                 f"'robustdepth world generate --preset small --out {root}'")
    from robustdepth.data.world import check_world_complete

    check_world_complete(root)
    if args.frame is not None and args.frame < 0:
        raise WorldArgumentError(f"--frame {args.frame}: must be >= 0")
    try:
        out = show(root, Path(args.out) if args.out else None, split=args.split, sequence=args.sequence,
                   frame=args.frame)
    except IndexError as err:  # the frame is past the sequence's end (the message gives the valid range)
        raise WorldArgumentError(f"--frame {args.frame}: {err}") from None
    print(f"wrote gallery {out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``world`` (with ``generate`` and ``show``) on a parent parser's subparsers."""
    world = subparsers.add_parser(
        "world", help="generate / show the embedded all-weather driving world",
        description="Procedural driving sequences with exact depth, poses and object ids, rendered in "
                    f"{', '.join(CONDITIONS)} (val/test pixel-aligned across conditions; train clear only).")
    sub = world.add_subparsers(dest="world_command", required=True)
    gen = sub.add_parser("generate", help="render a world to disk",
                         description="Render a world preset to ROOT (deterministic: same preset and seed give "
                                     "byte-identical files). Presets — " + _preset_help() + ".")
    gen.add_argument("--preset", choices=sorted(PRESETS), default="small", help="size preset (default: small)")
    gen.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    gen.add_argument("--out", required=True, help="output root folder; refuses one holding another preset/seed")
    gen.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)
    shw = sub.add_parser("show", help="write a gallery PNG of one frame in every condition",
                         description="Gallery of one frame: a row per condition with the image, its depth "
                                     "(magma, Monodepth2-style 95th-percentile disparity scaling) and object ids.")
    shw.add_argument("root", help="world root (folder holding world.json)")
    shw.add_argument("--out", default=None, help="PNG to write (default: ROOT/gallery.png)")
    shw.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default: test)")
    shw.add_argument("--sequence", default=None, help="sequence name (default: the first)")
    shw.add_argument("--frame", type=int, default=None, help="frame index (default: the middle frame)")
    shw.set_defaults(func=_show)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m robustdepth.world.cli …``)."""
    parser = argparse.ArgumentParser(prog="robustdepth")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["world", *(argv if argv is not None else sys.argv[1:])])
    from robustdepth.data.base import DataError

    try:
        return int(args.func(args))
    except (WorldArgumentError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
