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

Rows (registry keys): ``teacher`` (MD2 itself), ``md4all_dd`` (and ``md4all_dd_seed43``), ``syn2real_ra``
(Φ_syn = the md4all_dd row, Φ_day = the teacher), ACDepth's ablations ``acdepth_ld`` (L_d) / ``acdepth_ogd``
(L_d + OGD, teacher prior) / ``acdepth_ogd_oracle`` (L_d + OGD, ORACLE prior from GT) / ``acdepth_lc``
(L_d + L_c) and the full method with each prior, ``acdepth`` / ``acdepth_oracle``. The rows that decide what OGD
adds — L_d, L_d + OGD with each prior — and md4all-DD run with a second seed (``*_seed43``); the seed noise of a
row is |seed 42 − seed 43|, and a difference between rows counts only when it exceeds both rows' noise.
``--rows a,b`` trains and tabulates a subset (the teacher always comes first). L_d is compared at each scale's
native resolution (``losses.distill.resolution=native``, the official code's form); the table says so.
Seconds per training step are measured per run when it trains (wall and main-process CPU time; the
machine's load average is recorded with them) and reused with the run.

Run it from the repository root: run folders and the world are found relative to the working directory
(runs/bench*, data/world), the same paths every table and ``robustdepth bench`` record and share.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from robustdepth.bench.protocol import (
    ADVERSE,
    TEACHER,
    evaluate_run,
    method_row,
    protocol_flag,
    protocol_label,
    row_dir,
    run_row,
    runs_root_for,
    table_protocol,
)
from robustdepth.bench.script import run_script
from robustdepth.training.stages import read_timing

REPO = Path(__file__).resolve().parent.parent
CONDITIONS = ("clear", *ADVERSE)
METRICS = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "a1": "δ1"}
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "a1": False}
# Registry keys, in table order (Syn2Real's Φ_syn is the md4all_dd row: the registry trains it first).
KEYS = (TEACHER, "md4all_dd", "md4all_dd_seed43", "syn2real_ra", "acdepth_ld", "acdepth_ld_seed43", "acdepth_ogd",
        "acdepth_ogd_seed43", "acdepth_ogd_oracle", "acdepth_ogd_oracle_seed43", "acdepth_lc", "acdepth",
        "acdepth_oracle")
LABELS = {"teacher": "MD2 (teacher)", "md4all_dd": "md4all-DD", "md4all_dd_seed43": "md4all-DD, seed 43",
          "syn2real_ra": "Syn2Real-RA",
          "acdepth_ld": "ACDepth: L_d", "acdepth_ld_seed43": "ACDepth: L_d, seed 43",
          "acdepth_ogd": "ACDepth: L_d + OGD (teacher prior)",
          "acdepth_ogd_seed43": "ACDepth: L_d + OGD (teacher prior), seed 43",
          "acdepth_ogd_oracle": "ACDepth: L_d + OGD (*oracle* prior)",
          "acdepth_ogd_oracle_seed43": "ACDepth: L_d + OGD (*oracle* prior), seed 43",
          "acdepth_lc": "ACDepth: L_d + L_c", "acdepth": "ACDepth full (teacher prior)",
          "acdepth_oracle": "ACDepth full (*oracle* prior)"}
SEED_PAIRS = {key: f"{key}_seed43" for key in ("md4all_dd", "acdepth_ld", "acdepth_ogd", "acdepth_ogd_oracle")}


def seed_noise_rows(rows: dict[str, Any]) -> dict[str, dict[str, float]]:
    """|seed 42 − seed 43| AbsRel (clear, adverse mean) of every row that has both seeds in ``rows``."""
    out = {}
    for key, other in SEED_PAIRS.items():
        if key in rows and other in rows:
            out[key] = {c: abs(rows[key].get(c, {}).get("abs_rel", float("nan"))
                               - rows[other].get(c, {}).get("abs_rel", float("nan")))
                        for c in ("clear", "adverse_mean")}
    return out


def select_keys(rows_arg: str | None) -> tuple[str, ...]:
    """The teacher plus the asked rows (``--rows a,b``), in table order; unknown names are an error."""
    if not rows_arg:
        return KEYS
    asked = [r.strip() for r in rows_arg.split(",") if r.strip()]
    unknown = [r for r in asked if r not in KEYS]
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {unknown}; rows: {', '.join(KEYS)}")
    return tuple(k for k in KEYS if k == TEACHER or k in asked)


KEEP_MARKER = "<!-- kept below:"


def kept_sections(path: Path) -> str:
    """What follows KEEP_MARKER in the current results file (measurements made by other commands), kept verbatim."""
    if not path.is_file():
        return ""
    text = path.read_text()
    index = text.find(KEEP_MARKER)
    return "\n" + text[index:] if index >= 0 else ""


def markdown(results: dict[str, Any], command: str) -> str:
    rows, timing = results["rows"], results["timing"]
    lines = [f"# Teacher → student robust training ({'QUICK smoke run' if results['quick'] else 'protocol'})", "",
             f"Command: `{command}`. Protocol: {results['protocol_summary']}. Every student starts from the "
             "teacher's weights and sees online degraded inputs (rain, night, fog, snow, ≈1/5 each + clear); "
             "the test conditions are the world's own renders (not the training translators). L_d form: "
             f"{results.get('distill_resolution', 'native')} (each scale at its own resolution unless 'full'). "
             "Rows marked *oracle* rank against a relative-depth prior made from the world's GT depth "
             "(providers.depth_prior.source=oracle): they show what OGD does given a good prior and are not "
             "method results.", ""]
    for metric, name in METRICS.items():
        arrow = "lower is better" if LOWER_IS_BETTER[metric] else "higher is better"
        lines += [f"## {name} ({arrow})", "", "| method | " + " | ".join([*CONDITIONS, "adverse mean"]) + " |",
                  "|---|" + "---:|" * (len(CONDITIONS) + 1)]
        for key, cells in rows.items():
            values = [cells.get(c, {}).get(metric, float("nan")) for c in (*CONDITIONS, "adverse_mean")]
            lines.append(f"| {LABELS[key]} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
        lines.append("")
    noise = results.get("seed_noise", {})
    if noise:
        lines += ["## Seed noise (|seed 42 − seed 43| AbsRel)", "", "| row | clear | adverse mean |", "|---|---:|---:|"]
        lines += [f"| {LABELS[k]} | {v['clear']:.4f} | {v['adverse_mean']:.4f} |" for k, v in noise.items()]
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
    parser.add_argument("--runs", help="runs root (default: the protocol's, runs/bench for v1, --quick: "
                                       "runs/bench_quick), as in the other tables")
    parser.add_argument("--rows", help="comma-separated subset of rows (the teacher is always trained): "
                                       + ", ".join(KEYS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results",
                        help="folder of distillation(.quick).{json,md}, as in the other tables")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    protocol = table_protocol(args.protocol, args.quick)
    runs = runs_root_for(protocol, args.runs)
    stem = args.out / f"distillation{'_quick' if args.quick else ''}"

    keys = select_keys(args.rows)
    done: dict[str, tuple[Path, float | None]] = {}
    checkpoints = {key: run_row(protocol, key, runs, done)[0] for key in keys}
    timing = {key: read_timing(row_dir(runs, key)) for key in keys}
    rows = {key: method_row(evaluate_run(protocol, path), done[key][1]) for key, path in checkpoints.items()}
    results = {"quick": args.quick, "rows": rows, "timing": timing, "protocol": protocol_label(args.protocol, REPO),
               "runs_root": str(runs), "checkpoints": {k: str(v) for k, v in checkpoints.items()},
               "protocol_summary": protocol.summary(), "seed_noise": seed_noise_rows(rows),
               "distill_resolution": "native"}
    command = ("python benchmarks/distillation.py" + (" --quick" if args.quick else "")
               + protocol_flag(args.protocol, REPO)
               + (f" --rows {args.rows}" if args.rows else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(results, command) + kept_sections(stem.with_suffix(".md")))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
