"""``robustdepth bench methods``: every method side by side under the one benchmark protocol.

Trains (or reuses) the protocol's day-clear teacher and every recipe — Monodepth2, md4all-DD,
Syn2Real-RA, ACDepth, RoSAMDepth, MD2+SEC and the combined ``all`` — evaluates each per condition
on the world's test split and with the RoboDepth corruptions of the clear test frames, and writes
``methods.{json,md}``, a bar plot of AbsRel per condition per method and a qualitative grid (one
test frame in every condition × each method's depth). Every stage is cached: an interrupted
benchmark continues where it stopped.

Chains (as the papers): md4all-DD, ACDepth and ``all`` distil the day-clear teacher; Syn2Real-RA
and RoSAMDepth distil Φ_syn = the md4all-DD row (with Φ_day = the teacher); MD2+SEC continues the
teacher self-supervised with SECL. The Monodepth2 row is the teacher itself.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.bench.protocol import (
    ADVERSE,
    BenchProtocol,
    evaluate_run,
    method_row,
    rows_to_markdown,
    teacher_checkpoint,
)

# row name -> (recipe, the row whose checkpoint is its teacher; "teacher" = the protocol teacher, None = none)
ROWS: dict[str, tuple[str, str | None]] = {
    "md4all-DD": ("md4all_dd", "teacher"),
    "Syn2Real-RA": ("syn2real_ra", "md4all-DD"),
    "ACDepth": ("acdepth", "teacher"),
    "RoSAMDepth": ("rosam", "md4all-DD"),
    "MD2+SEC": ("sec_monodepth2", None),
    "all": ("all", "teacher"),
}
CORRUPTION_FRAMES = 6


def quick_protocol(protocol: BenchProtocol) -> BenchProtocol:
    """A smoke-sized copy: the tiny world, a few steps, small batches."""
    return replace(protocol.scaled(0.01, world_preset="tiny"), teacher_steps=6, student_steps=3,
                   teacher_batch_size=4, student_batch_size=2)


def _row_dir(runs: Path, name: str) -> Path:
    return runs / "methods" / name.lower().replace("+", "_").replace("-", "_")


def mask_cache(protocol: BenchProtocol, runs: Path) -> Path:
    """Felzenszwalb object masks of the training frames (weight-free default), written once."""
    from robustdepth.config import load_config
    from robustdepth.priors.masks import write_mask_cache

    cache = runs / "methods" / "masks_felzenszwalb"
    write_mask_cache(load_config("rosam", protocol.common_overrides()), cache)
    return cache


def train_row(protocol: BenchProtocol, name: str, teachers: dict[str, Path], runs: Path,
              masks: Path, extra: list[str]) -> tuple[Path, float]:
    """One row through the teacher→student pipeline; returns (checkpoint, s/step of its own training)."""
    from robustdepth.config import load_config
    from robustdepth.training.pipeline import run_pipeline

    recipe, teacher_row = ROWS[name]
    run_dir = _row_dir(runs, name)
    overrides = [*protocol.common_overrides(), f"optim.batch_size={protocol.student_batch_size}",
                 f"optim.max_steps={protocol.student_steps}", f"train.name={run_dir.name}", *extra]
    if teacher_row is None:
        overrides.append(f"model.init_checkpoint={teachers['teacher']}")
    else:
        overrides.append(f"providers.teacher.checkpoint={teachers[teacher_row]}")
    cfg = load_config(recipe, overrides)
    if cfg.providers.masks.enabled and cfg.providers.masks.method != "world":
        cfg.providers.masks.cache = str(masks)
    timing = run_dir / "timing.json"
    t0 = time.perf_counter()
    result = run_pipeline(cfg, run_dir)
    if result.stages[-1]["action"] == "trained" or not timing.is_file():
        timing.write_text(json.dumps({"s_per_step": (time.perf_counter() - t0) / protocol.student_steps,
                                      "action": result.stages[-1]["action"]}))
    return result.checkpoint, float(json.loads(timing.read_text())["s_per_step"])


def corrupted_clear_frames(protocol: BenchProtocol, frames: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """GT of ``frames`` clear test frames and their RoboDepth corruptions (made once, shared by all rows)."""
    from robustdepth.bench.corruptions import clear_frames
    from robustdepth.config import load_config
    from robustdepth.evaluation.corruptions import CORRUPTIONS, corrupt

    cfg = load_config("monodepth2", protocol.common_overrides())
    images, gts = zip(*clear_frames(cfg, protocol.eval_split, frames), strict=True)
    variants = {(name, sev): [corrupt(img, name, sev, seed=i) for i, img in enumerate(images)]
                for name in CORRUPTIONS for sev in range(1, 6)}
    return list(gts), {"clean": list(images), "variants": variants}


def corruption_scores(checkpoint: Path, gts: list[np.ndarray], images: dict[str, Any], protocol: BenchProtocol,
                      ) -> dict[str, Any]:
    """DEE / mCE / mRR of one checkpoint against RoboDepth's MonoDepth2-R18 reference (cached)."""
    from robustdepth.evaluation import get_protocol
    from robustdepth.evaluation.evaluate import evaluate_frame
    from robustdepth.evaluation.robodepth import load_reference, score_results
    from robustdepth.inference import DepthModel

    cache = checkpoint.parent.parent / "corruptions.json"
    if cache.is_file() and cache.stat().st_mtime >= checkpoint.stat().st_mtime:
        return json.loads(cache.read_text())
    model, eval_protocol = DepthModel.from_checkpoint(checkpoint), get_protocol(protocol.eval_protocol)

    def mean_metrics(batch: list[np.ndarray]) -> dict[str, float]:
        frames = [evaluate_frame(gt, model.infer(img), eval_protocol) for gt, img in zip(gts, batch, strict=True)]
        return {k: float(np.mean([f[k] for f in frames])) for k in ("abs_rel", "a1")}

    per: dict[str, dict[int, dict[str, float]]] = {}
    for (name, sev), batch in images["variants"].items():
        per.setdefault(name, {})[sev] = mean_metrics(batch)
    scores = score_results(per, mean_metrics(images["clean"]), load_reference("monodepth2_r18"),
                           name=str(checkpoint))
    summary = {"mCE": scores["mce"], "mRR": scores["mrr"], "mean_dee": scores["mean_dee"]}
    cache.write_text(json.dumps(summary))
    return summary


def run(protocol: BenchProtocol, out: Path, runs: Path, quick: bool = False,
        corruption_frames: int = CORRUPTION_FRAMES, rows: list[str] | None = None) -> dict[str, Any]:
    from robustdepth.demo import world_condition_panel
    from robustdepth.evaluation.report import plot_metric_bars
    from robustdepth.inference import DepthModel

    extra = ["data.num_workers=0", "train.progress=false"] if quick else []
    teachers = {"teacher": teacher_checkpoint(protocol, runs)}
    masks = mask_cache(protocol, runs)
    checkpoints, timing = {"Monodepth2": teachers["teacher"]}, {}
    for name in rows or list(ROWS):
        ckpt, s_step = train_row(protocol, name, teachers, runs, masks, extra)
        teachers[name] = checkpoints[name] = ckpt
        timing[name] = s_step
    gts, images = corrupted_clear_frames(protocol, corruption_frames)
    table: dict[str, dict[str, Any]] = {}
    for name, ckpt in checkpoints.items():
        table[name] = method_row(evaluate_run(protocol, ckpt), timing.get(name))
        table[name]["corruptions"] = corruption_scores(ckpt, gts, images, protocol)
    out.mkdir(parents=True, exist_ok=True)
    stem = "methods_quick" if quick else "methods"
    summaries = {name: evaluate_run(protocol, ckpt) for name, ckpt in checkpoints.items()}
    plot_metric_bars(summaries, "abs_rel", out / f"{stem}_abs_rel.png", conditions=["clear", *ADVERSE])
    models = {name: DepthModel.from_checkpoint(ckpt) for name, ckpt in checkpoints.items()}
    world_condition_panel(models, protocol.world_root, out / f"{stem}_grid.png")
    result = {"protocol": {k: str(v) for k, v in protocol.__dict__.items()}, "quick": quick, "rows": table,
              "corruption_frames": corruption_frames}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out / f"{stem}.md").write_text(to_markdown(result, stem))
    return result


def to_markdown(result: dict[str, Any], stem: str) -> str:
    p = result["protocol"]
    note = (f"{'QUICK smoke run — not a result. ' if result['quick'] else ''}Command: `robustdepth bench methods "
            f"--protocol benchmarks/protocol.yaml{' --quick' if result['quick'] else ''}`. World `{p['world_preset']}` "
            f"(seed {p['world_seed']}) at {p['height']}×{p['width']}; teacher {p['teacher_steps']} steps, students "
            f"{p['student_steps']} steps from the teacher's weights; evaluation protocol `{p['eval_protocol']}` "
            f"(0.1–80 m, per-image median scaling) on the `{p['eval_split']}` split's own renders of each weather. "
            "Gap = adverse-mean AbsRel − clear AbsRel. mCE/mRR: RoboDepth corruptions of "
            f"{result['corruption_frames']} clear test frames, reference MonoDepth2-R18 (KITTI-C published row).")
    lines = [rows_to_markdown(result["rows"], "All methods side by side", note), "",
             "| method | mCE | mRR |", "|---|---:|---:|"]
    for name, row in result["rows"].items():
        c = row["corruptions"]
        lines.append(f"| {name} | {100 * c['mCE']:.1f} % | {100 * c['mRR']:.1f} % |")
    lines += ["", f"![AbsRel per condition]({stem}_abs_rel.png)", "", f"![One test frame]({stem}_grid.png)", ""]
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    protocol = BenchProtocol.load(args.protocol)
    if args.quick:
        protocol = quick_protocol(protocol)
    result = run(protocol, Path(args.out), Path(args.runs), quick=args.quick,
                 corruption_frames=args.corruption_frames, rows=args.rows)
    print(to_markdown(result, "methods_quick" if args.quick else "methods"))
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("methods", help="every method side by side (table, plot, grid)", description=__doc__)
    p.add_argument("--protocol", default="benchmarks/protocol.yaml")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--runs", default="runs/bench", help="cache of trained runs (shared teacher at RUNS/teacher)")
    p.add_argument("--quick", action="store_true", help="tiny smoke version (tiny world, a few steps)")
    p.add_argument("--corruption-frames", type=int, default=CORRUPTION_FRAMES)
    p.add_argument("--rows", nargs="+", choices=list(ROWS), help="train only these rows (plus what they need)")
    p.set_defaults(func=_cmd)
