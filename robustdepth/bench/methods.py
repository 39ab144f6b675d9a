"""``robustdepth bench methods``: every method side by side under the one benchmark protocol.

Trains (or reuses) the protocol's day-clear teacher and every method's row from the one run registry
(robustdepth.bench.protocol: ``RUNS/<key>``, the same runs benchmarks/distillation.py, rosam.py and sec.py
report, each trained once) — Monodepth2, md4all-DD, Syn2Real-RA, ACDepth, RoSAMDepth, MD2+SEC and the
combined ``all`` — evaluates each per condition on the world's test split and with the RoboDepth
corruptions of the clear test frames, and writes ``methods.{json,md}``, a bar plot of AbsRel per condition
per method and a qualitative grid (one test frame in every condition × each method's depth). Every stage
is cached: an interrupted benchmark continues where it stopped. Run it from the repository root::

    robustdepth bench methods --protocol benchmarks/protocol.yaml           # runs/bench → docs/results/methods.*
    robustdepth bench methods --protocol benchmarks/protocol.yaml --quick   # runs/bench_quick → methods_quick.*

On a fresh runs root: the teacher (≈ 30 min on 2 quiet cores) + seven students of 300 steps (≈ 50 min);
rows the other tables already trained cost only their evaluation.

Chains (as the papers, registry keys in brackets): md4all-DD [md4all_dd], ACDepth [acdepth] and ``all``
distil the day-clear teacher; Syn2Real-RA [syn2real_ra] and RoSAMDepth [rosam] distil Φ_syn = the md4all-DD
row (with Φ_day = the teacher); MD2+SEC [sec_monodepth2] continues the teacher self-supervised with SECL.
The Monodepth2 row is the teacher itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.bench.protocol import (
    ADVERSE,
    TEACHER,
    BenchProtocol,
    evaluate_run,
    method_row,
    rows_to_markdown,
    run_row,
    runs_root_for,
    table_protocol,
)

# table row name -> registry key (robustdepth.bench.protocol.ROWS)
ROWS: dict[str, str] = {
    "md4all-DD": "md4all_dd",
    "Syn2Real-RA": "syn2real_ra",
    "ACDepth": "acdepth",
    "RoSAMDepth": "rosam",
    "MD2+SEC": "sec_monodepth2",
    "all": "all",
    "all − SEC": "all_no_sec",  # ACDepth + RoSAMDepth terms only: what the SEC overlay adds to the combination
}
CORRUPTION_FRAMES = 6


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

    done: dict[str, tuple[Path, float | None]] = {}
    teacher, teacher_s_per_step = run_row(protocol, TEACHER, runs, done)
    checkpoints, timing = {"Monodepth2": teacher}, {"Monodepth2": teacher_s_per_step}
    for name in rows or list(ROWS):
        checkpoints[name], timing[name] = run_row(protocol, ROWS[name], runs, done)
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
    world_condition_panel(models, protocol.world_root, out / f"{stem}_grid.png", width_inches=2.0)
    result = {"protocol": {k: str(v) for k, v in protocol.__dict__.items()}, "quick": quick, "rows": table,
              "runs_root": str(runs), "checkpoints": {k: str(v) for k, v in checkpoints.items()},
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
    lines += ["", *reading(result["rows"])]
    lines += ["", f"![AbsRel per condition]({stem}_abs_rel.png)", "", f"![One test frame]({stem}_grid.png)", ""]
    return "\n".join(lines)


def reading(rows: dict[str, dict[str, Any]], baseline: str = "Monodepth2") -> list[str]:
    """The table in words, computed from it: each row's change against the baseline, the best row per column."""
    if baseline not in rows or "adverse_mean" not in rows[baseline]:
        return []
    base = rows[baseline]
    lines = ["## Reading the table", "",
             f"Relative change against {baseline} (negative AbsRel = better):", "",
             "| method | adverse AbsRel | clear AbsRel | adverse RMSE | adverse δ1 |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        if name == baseline or "adverse_mean" not in r:
            continue
        def change(part: str, metric: str, r: dict[str, Any] = r) -> str:
            return f"{100 * (r[part][metric] / base[part][metric] - 1):+.1f} %"
        lines.append(f"| {name} | {change('adverse_mean', 'abs_rel')} | {change('clear', 'abs_rel')} | "
                     f"{change('adverse_mean', 'rmse')} | {change('adverse_mean', 'a1')} |")
    columns = {"adverse AbsRel": ("adverse_mean", "abs_rel", min), "adverse SqRel": ("adverse_mean", "sq_rel", min),
               "adverse RMSE": ("adverse_mean", "rmse", min), "adverse δ1": ("adverse_mean", "a1", max),
               "clear AbsRel": ("clear", "abs_rel", min)}
    best = []
    for label, (part, metric, pick) in columns.items():
        scored = {n: r[part][metric] for n, r in rows.items() if part in r}
        winner = pick(scored, key=scored.__getitem__)
        best.append(f"{label}: {winner} ({scored[winner]:.4f})")
    return [*lines, "", "Best per column: " + "; ".join(best) + "."]


def _cmd(args: argparse.Namespace) -> int:
    protocol = table_protocol(args.protocol, args.quick)
    runs = runs_root_for(protocol, args.runs)
    result = run(protocol, Path(args.out), runs, quick=args.quick,
                 corruption_frames=args.corruption_frames, rows=args.rows)
    print(to_markdown(result, "methods_quick" if args.quick else "methods"))
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("methods", help="every method side by side (table, plot, grid)", description=__doc__)
    p.add_argument("--protocol", default="benchmarks/protocol.yaml")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--runs", default=None, help="runs root shared by every table (default runs/bench; --quick: "
                   "runs/bench_quick); use the same spelling as the other tables (relative to the repo root)")
    p.add_argument("--quick", action="store_true", help="tiny smoke version (tiny world, a few steps)")
    p.add_argument("--corruption-frames", type=int, default=CORRUPTION_FRAMES)
    p.add_argument("--rows", nargs="+", choices=list(ROWS), help="train only these rows (plus what they need)")
    p.set_defaults(func=_cmd)
