"""``robustdepth priors masks --data D --method M --out CACHE [RECIPE] [KEY=VALUE …]``: offline object masks.

The recipe (default ``rosam``) fixes the dataset, the training resolution and the method parameters
(``providers.masks.*``); ``--data``/``--method`` are shortcuts for ``data.root``/``providers.masks.method``.
Frames already in CACHE are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
from typing import Any


def split_recipe(args: list[str], default: str) -> tuple[str, list[str]]:
    """``[RECIPE] KEY=VALUE …`` → (recipe, overrides): the first argument without ``=`` names the recipe."""
    recipes = [a for a in args if "=" not in a]
    if len(recipes) > 1:
        raise SystemExit(f"priors masks: at most one RECIPE, got {recipes}")
    return (recipes[0] if recipes else default), [a for a in args if "=" in a]


def cmd_masks(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robustdepth.configure import load_config
    from robustdepth.providers.masks import write_mask_cache

    recipe, overrides = split_recipe(args.args, "rosam")
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.method:
        overrides.append(f"providers.masks.method={args.method}")
    if args.sam_path:
        overrides.append(f"providers.masks.sam_path={args.sam_path}")
    cfg = load_config(recipe, overrides)
    meta = write_mask_cache(cfg, Path(args.out), progress=not args.quiet, split=args.split)
    oracle = " (ORACLE: the world's object ids, for ablation only)" if meta["oracle"] else ""
    print(f"masks {meta['method']}{oracle}: {meta['frames']} frames at {meta['height']}×{meta['width']} in "
          f"{args.out} ({meta['written']} written, {meta['frames'] - meta['written']} already cached)")
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("masks", help="RoSAMDepth object masks (SAM / felzenszwalb / slic / world oracle)",
                            description=(
        "Segment every training frame once at the training resolution into a non-overlapping partition "
        "(SAM: near-duplicates suppressed, largest containing mask wins, tiny regions void; uncovered = 0 = "
        "void), cached as uint16 PNGs that the masks sample hook loads (providers.masks.cache). The cache "
        "records a fingerprint (dataset, each sequence's content, the frames, the segmenter settings) that "
        "training checks. Resumable."))
    p.add_argument("args", nargs="*", metavar="[RECIPE] KEY=VALUE",
                   help="recipe (default rosam) for dataset/resolution/method parameters, then overrides")
    p.add_argument("--data", help="dataset root (data.root)")
    p.add_argument("--method", choices=("sam", "felzenszwalb", "slic", "world"),
                   help="segmenter (providers.masks.method); world = the world's object ids, an ORACLE")
    p.add_argument("--out", required=True, help="cache directory (CACHE/<sequence>/<frame:06d>.png + masks.json)")
    p.add_argument("--sam-path", help="local SAM directory (providers.masks.sam_path)")
    p.add_argument("--split", help="split to segment (default data.train_split)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_masks)
