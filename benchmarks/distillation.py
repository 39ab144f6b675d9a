"""Teacher → student robust training on the all-weather world: MD2 vs md4all-DD, Syn2Real-RA, ACDepth (+ ablations).

Under benchmarks/protocol.yaml (the protocol every method table shares) and its one run registry
(robustdepth.bench.protocol: ``runs/bench/<row>``, each distinct run trained once and reused by every
table): the day-clear Monodepth2 teacher (``runs/bench/teacher``), then each student from the teacher's
weights (resumable; finished runs and their evaluations are reused), every model evaluated per condition
on the world's test split; writes docs/results/distillation.{json,md}.

    .venv/bin/python benchmarks/distillation.py            # full protocol (≈ 1 h 10 min on 2 quiet cores
                                                            # when nothing is cached yet; minutes when it is)
    .venv/bin/python benchmarks/distillation.py --quick    # smoke version: tiny world, a few steps, runs/bench_quick
                                                            # → docs/results/distillation_quick.{json,md}

Rows (registry keys): ``teacher`` (MD2 itself), ``md4all_dd`` (and ``md4all_dd_seed43``, the same run
with another seed: the run-to-run noise every difference in the table must exceed), ``syn2real_ra``
(Φ_syn = the md4all_dd row, Φ_day = the teacher), ACDepth's ablations ``acdepth_ld`` / ``acdepth_ogd`` /
``acdepth_lc`` and full ``acdepth``.
Seconds per training step are measured per run when it trains (wall and main-process CPU time; the
machine's load average is recorded with them) and reused with the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from robustdepth.bench.protocol import (  # noqa: E402
    ADVERSE,
    TEACHER,
    evaluate_run,
    method_row,
    read_timing,
    row_dir,
    run_row,
    runs_root_for,
    table_protocol,
)

CONDITIONS = ("clear", *ADVERSE)
METRICS = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "a1": "δ1"}
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "a1": False}
# Registry keys, in table order (Syn2Real's Φ_syn is the md4all_dd row: the registry trains it first).
KEYS = (TEACHER, "md4all_dd", "md4all_dd_seed43", "syn2real_ra", "acdepth_ld", "acdepth_ogd", "acdepth_lc",
        "acdepth")
LABELS = {"teacher": "MD2 (teacher)", "md4all_dd": "md4all-DD", "md4all_dd_seed43": "md4all-DD, seed 43 (noise)",
          "syn2real_ra": "Syn2Real-RA",
          "acdepth_ld": "ACDepth: L_d", "acdepth_ogd": "ACDepth: L_d + OGD", "acdepth_lc": "ACDepth: L_d + L_c",
          "acdepth": "ACDepth (full)"}


def markdown(results: dict[str, Any], command: str) -> str:
    rows, timing = results["rows"], results["timing"]
    lines = [f"# Teacher → student robust training ({'QUICK smoke run' if results['quick'] else 'protocol'})", "",
             f"Command: `{command}`. Protocol: {results['protocol_summary']}. Every student starts from the "
             "teacher's weights and sees online degraded inputs (rain, night, fog, snow, ≈1/5 each + clear); "
             "the test conditions are the world's own renders (not the training translators).", ""]
    for metric, name in METRICS.items():
        arrow = "lower is better" if LOWER_IS_BETTER[metric] else "higher is better"
        lines += [f"## {name} ({arrow})", "", "| method | " + " | ".join([*CONDITIONS, "adverse mean"]) + " |",
                  "|---|" + "---:|" * (len(CONDITIONS) + 1)]
        for key, cells in rows.items():
            values = [cells.get(c, {}).get(metric, float("nan")) for c in (*CONDITIONS, "adverse_mean")]
            lines.append(f"| {LABELS[key]} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
        lines.append("")
    lines += ["## Training speed", "",
              "| recipe | steps timed | wall s/step | CPU s/step | load average (1/5/15 min) |",
              "|---|---:|---:|---:|---|"]
    for key, t in timing.items():
        if t.get("steps"):
            load = " / ".join(f"{x:.1f}" for x in t.get("load_average", []))
            cpu = f"{t['cpu_s_per_step']:.3f}" if "cpu_s_per_step" in t else "–"
            lines.append(f"| {LABELS[key]} | {t['steps']} | {t['s_per_step']:.3f} | {cpu} | {load} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny world, a few steps (smoke test); runs in runs/bench_quick")
    parser.add_argument("--out", help="runs root (default runs/bench, --quick: runs/bench_quick)")
    parser.add_argument("--results",
                        help="results path stem (default docs/results/distillation, --quick: …/distillation_quick)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    protocol = table_protocol(args.protocol, args.quick)
    os.chdir(REPO)  # run paths are stored relative to the repository root, so every table shares them
    runs = runs_root_for(protocol, args.out)
    stem = Path(args.results or f"docs/results/distillation{'_quick' if args.quick else ''}")

    done: dict[str, tuple[Path, float | None]] = {}
    checkpoints = {key: run_row(protocol, key, runs, done)[0] for key in KEYS}
    timing = {key: read_timing(row_dir(runs, key)) for key in KEYS}
    rows = {key: method_row(evaluate_run(protocol, path), done[key][1]) for key, path in checkpoints.items()}
    results = {"quick": args.quick, "rows": rows, "timing": timing, "protocol": str(args.protocol),
               "runs_root": str(runs), "checkpoints": {k: str(v) for k, v in checkpoints.items()},
               "protocol_summary": protocol.summary()}
    command = "python benchmarks/distillation.py" + (" --quick" if args.quick else "")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(results, command))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
