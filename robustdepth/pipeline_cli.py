"""``robustdepth pipeline RECIPE [KEY=VALUE ...] --run-dir D``: teacher → student, end to end, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_pipeline(args: argparse.Namespace) -> int:
    from robustdepth.configure import load_config
    from robustdepth.training.pipeline import run_pipeline

    cfg = load_config(args.recipe, args.overrides)
    run_dir = Path(args.run_dir or cfg.train.run_dir or Path("runs") / cfg.train.name)
    result = run_pipeline(cfg, run_dir)
    for stage in result.stages:
        print(f"{stage['stage']}: {stage['action']} ({stage['dir']})")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="train a distillation recipe end to end (teacher, then student)",
                       description=(
        "Two-stage training of teacher-student recipes (md4all_dd, syn2real_ra, acdepth, …): train or reuse "
        "the teacher (providers.teacher.checkpoint, or providers.teacher.recipe + steps, trained in "
        "RUN_DIR/teacher), then the student in RUN_DIR/student, initialised from the teacher. Re-running "
        "reuses finished stages and resumes interrupted ones."))
    p.add_argument("recipe", help="recipe name or path")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides of the student recipe "
                   "(the teacher stage: providers.teacher.steps / providers.teacher.overrides=[...])")
    p.add_argument("--run-dir", help="pipeline folder (default runs/<train.name>)")
    p.set_defaults(func=cmd_pipeline)
