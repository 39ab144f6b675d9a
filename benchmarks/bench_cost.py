"""What the methods table costs on this machine: every row's s/step in fp32 and through the protocol's student
overlay, measured side by side, and the table's wall time projected from them and measured from its runs.

    python benchmarks/bench_cost.py                      # every main-table row + controls → docs/results/bench_cost.*
    python benchmarks/bench_cost.py --rows md4all_dd rosam --steps 6

Each row is built exactly as ``robustdepth bench methods`` trains it (``robustdepth.bench.protocol.row_config``:
the protocol's resolution, batch, chain checkpoints, mask cache, queue schedule) twice — with the protocol's
student overlay (v2: ``fast``) and without it (fp32, the v1 path) — as two live trainers in this process. After
``--warmup`` steps each, ``--rounds`` rounds alternate ``--steps`` steps of one and of the other, so both see the
same host; a row's s/step is the median over rounds of the round's mean, its speed-up the median of the per-round
ratios. Terms that switch on late in a schedule (``start_fraction``) and the latency queue's warm-up are switched
on from the first step, so every row is timed with all of its terms active: an upper bound for rows whose terms
start late. A step count that is a multiple of ``degrade.every_n_steps`` keeps SEC rows' degraded steps in
proportion.

The projection: Σ over rows of (protocol steps × seeds × s/step) ÷ ``--jobs`` (``robustdepth bench methods --jobs
N`` trains N runs at once, one thread each). The measured part: every finished run's ``timing.json`` in the runs
root (wall and CPU seconds per step, with the host's load average when it finished), and the wall time of the
whole table when every run of it has finished. Nothing is trained here: a row whose chain (the teacher, Φ_syn)
has not finished is listed as not measured.

Run it from the repository root (run folders and the world are found relative to the working directory).
Writes ``bench_cost.{json,md}`` under ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from robustdepth.bench.methods import TABLE, chain_keys, table_rows
from robustdepth.bench.protocol import (
    TEACHER,
    BenchProtocol,
    protocol_label,
    row_config,
    row_inputs,
    run_folder,
    runs_root_for,
    table_protocol,
)
from robustdepth.bench.script import run_script
from robustdepth.bench.timing import cpu_description
from robustdepth.training.stages import last_checkpoint, read_timing, set_key
from robustdepth.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
MAIN_KINDS = ("baseline", "method")
MAIN_BUDGET_H = 3.0  # the main table's wall-time budget on the 2-core CPU (every row × every seed)


def chain_ready(protocol: BenchProtocol, runs: Path, key: str) -> bool:
    """Whether every run ``key``'s chain needs has finished (so building its config trains nothing)."""
    needed = [run_folder(protocol, runs, TEACHER), *(run_folder(protocol, runs, k) for k in chain_keys(key))]
    return all(last_checkpoint(d) is not None and read_timing(d) for d in needed)


def probe_config(protocol: BenchProtocol, runs: Path, key: str, overlay: str) -> Any:
    """Row ``key``'s config with the student ``overlay`` ("" = fp32), every late term and the queue on at once."""
    cfg = row_config(replace(protocol, student_overlay=overlay), key, **row_inputs(protocol, key, runs))
    for name, section in cfg.losses.items():
        if float(section.weight) != 0.0 and "start_fraction" in section:
            set_key(cfg, f"losses.{name}.start_fraction", 0.0)
    if cfg.providers.latency_queue.enabled:
        set_key(cfg, "providers.latency_queue.warmup_steps", 0)
    set_key(cfg, "train.progress", False)
    set_key(cfg, "data.num_workers", 0)
    return cfg


def time_steps(trainer: Trainer, batches: Any, steps: int) -> float:
    """Mean wall seconds per step over ``steps`` training steps (data included, as in a run)."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    return (time.perf_counter() - start) / max(1, steps)


def measure_row(protocol: BenchProtocol, runs: Path, key: str, tmp: Path, steps: int, warmup: int,
                rounds: int) -> dict[str, Any]:
    """fp32 vs the overlay for one row: s/step of each (median of round means) and the paired speed-up."""
    variants = {"fp32": "", "overlay": protocol.student_overlay}
    trainers = {name: Trainer(probe_config(protocol, runs, key, overlay), run_dir=tmp / f"{key}_{name}")
                for name, overlay in variants.items()}
    batches = {name: trainer._batches() for name, trainer in trainers.items()}
    for name, trainer in trainers.items():
        time_steps(trainer, batches[name], warmup)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for r in range(rounds):
        for name in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
            times[name].append(time_steps(trainers[name], batches[name], steps))
    del trainers, batches  # two live trainers per row: free them before the next row's
    gc.collect()
    return {"fp32_s_per_step": statistics.median(times["fp32"]),
            "overlay_s_per_step": statistics.median(times["overlay"]),
            "speedup": statistics.median(a / b for a, b in zip(times["fp32"], times["overlay"], strict=True)),
            "rounds": rounds, "steps_per_round": steps}


def measured_runs(protocol: BenchProtocol, runs: Path, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Every finished (row, seed) run's timing.json in the runs root, keyed ``<key>@<seed>``."""
    out = {}
    for key in keys:
        for seed in protocol.run_seeds:
            timing = read_timing(run_folder(protocol, runs, key, seed))
            if timing:
                out[f"{key}@{seed}"] = timing
    return out


def table_wall(protocol: BenchProtocol, runs: Path, keys: list[str]) -> dict[str, Any]:
    """Wall time of the table from its runs' files: first config written → last checkpoint written, when every
    (row, seed) run has finished; else how many have."""
    folders = [run_folder(protocol, runs, key, seed) for key in keys for seed in protocol.run_seeds]
    finished = [f for f in folders if read_timing(f)]
    result: dict[str, Any] = {"runs": len(folders), "finished": len(finished)}
    if finished and len(finished) == len(folders):
        start = min((f / "config.yaml").stat().st_mtime for f in folders)
        end = max(last_checkpoint(f).stat().st_mtime for f in folders)  # type: ignore[union-attr]
        result["wall_h"] = (end - start) / 3600
    return result


def cpu_projection(result: dict[str, Any]) -> dict[str, Any]:
    """The main table's wall time on free cores, from the finished runs' own CPU seconds per step: Σ over the main
    rows of (mean CPU s/step over the row's finished seeds × steps × seeds) ÷ jobs. A trainer uses one core, so its
    CPU time is what it would take alone on that core, whatever else shared the host (a lower bound: the
    data-loader worker processes' CPU time is not in it); rows with no finished run are named, not guessed."""
    seeds, steps, jobs = len(result["seeds"]), result["student_steps"], result["jobs"]
    hours, missing = 0.0, []
    for name, row in result["rows"].items():
        if row["kind"] not in MAIN_KINDS:
            continue
        cpu = [t["cpu_s_per_step"] for run, t in result["measured"].items()
               if run.rsplit("@", 1)[0] == row["key"] and t.get("cpu_s_per_step")]
        if not cpu:
            missing.append(name)
            continue
        hours += statistics.fmean(cpu) * steps * seeds / jobs / 3600
    return {"hours": hours, "missing": missing}


def to_markdown(result: dict[str, Any]) -> str:
    seeds, steps, jobs = len(result["seeds"]), result["student_steps"], result["jobs"]
    lines = [f"# Cost of the methods table (protocol v{result['protocol_version']})", "",
             f"Machine: {result['machine']}; torch {result['torch']}; {result['threads']} thread(s) per trainer; "
             f"load average when it ran {' / '.join(map(str, result['load_average']))}. Command: "
             f"`{result['command']}`. Protocol: {result['protocol_summary']}.", "",
             f"Each row is timed as `robustdepth bench methods` trains it, in fp32 (the v1 path) and through the "
             f"protocol's student overlay (`+{result['overlay']}`), alternated in one process "
             f"({result['rounds']} rounds of {result['steps']} steps after {result['warmup']} warm-up steps; every "
             "late term and the latency queue on from the first step). Projected wall time = Σ rows (steps × seeds "
             f"× s/step) ÷ jobs, with {steps} steps, {seeds} seeds, {jobs} jobs.", "",
             "| row | kind | fp32 s/step | overlay s/step | speed-up (paired) | projected h, fp32 "
             "| projected h, overlay |",
             "|---|---|---:|---:|---:|---:|---:|"]
    totals: dict[str, dict[str, float]] = {}
    for name, row in result["rows"].items():
        m = row.get("probe")
        if m is None:
            lines.append(f"| {name} | {row['kind']} | – | – | – | – | – |  ")
            continue
        hours = {v: steps * seeds * m[f"{v}_s_per_step"] / jobs / 3600 for v in ("fp32", "overlay")}
        group = "main" if row["kind"] in MAIN_KINDS else "controls"
        for v, h in hours.items():
            totals.setdefault(group, {}).setdefault(v, 0.0)
            totals[group][v] += h
        lines.append(f"| {name} | {row['kind']} | {m['fp32_s_per_step']:.3f} | {m['overlay_s_per_step']:.3f} | "
                     f"×{m['speedup']:.2f} | {hours['fp32']:.2f} | {hours['overlay']:.2f} |")
    for group, h in totals.items():
        lines.append(f"| **{group} table** | | | | | **{h['fp32']:.2f}** | **{h['overlay']:.2f}** |")
    if "main" in totals:
        main = totals["main"]["overlay"]
        lines += ["", f"Budget of the main table: {MAIN_BUDGET_H:g} h on this CPU. Projected at the load above: "
                  f"{main:.2f} h through the overlay ({main / MAIN_BUDGET_H:.1f}× the budget), "
                  f"{totals['main']['fp32']:.2f} h in fp32. The probe shares the CPU with whatever else runs, so "
                  "its absolute s/step scale with the load average; its speed-ups are paired, round by round."]
    missing = [n for n, r in result["rows"].items() if r.get("probe") is None]
    if missing:
        lines += ["", f"Not measured (its chain has not finished): {', '.join(missing)}."]
    lines += ["", "## Measured runs", "",
              f"Runs root `{result['runs_root']}`: every finished run's own timing (wall and CPU seconds per step "
              "over the steps it trained in its last session; a run that shared the CPU with others shows it in "
              "its load average).", "",
              "| run | steps | wall s/step | CPU s/step | load average at the end |", "|---|---:|---:|---:|---|"]
    for run, t in result["measured"].items():
        load = " / ".join(map(str, t.get("load_average", [])))
        lines.append(f"| {run} | {t.get('steps', '–')} | {t.get('s_per_step', float('nan')):.3f} | "
                     f"{t.get('cpu_s_per_step', float('nan')):.3f} | {load} |")
    wall = result["table_wall"]
    lines += ["", (f"Main table: {wall['finished']} of {wall['runs']} runs finished"
                   + (f"; wall time from the first run's start to the last run's end: {wall['wall_h']:.2f} h."
                      if "wall_h" in wall else "."))]
    free = cpu_projection(result)
    if free["hours"]:
        lines += ["", f"On {jobs} free cores (one trainer per core, from the finished runs' CPU s/step — the "
                  "trainer process's own; its data-loader workers and the evaluation are not included): the main "
                  f"table takes {free['hours']:.2f} h, "
                  f"{free['hours'] / MAIN_BUDGET_H:.2f}× the {MAIN_BUDGET_H:g} h budget"
                  + (f" — without {', '.join(free['missing'])}, which no finished run measures yet."
                     if free["missing"] else ".")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--runs", help="runs root (default: the protocol's)")
    parser.add_argument("--rows", nargs="+", metavar="KEY", help="only these rows (registry keys)")
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="the --jobs of the projected table run")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of the timed trainers")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--measured-only", action="store_true", help="keep the probes of OUT/bench_cost.json and "
                        "refresh only the measured runs and the table's wall time (nothing is timed)")
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds, args.jobs, args.threads) < 1 or args.warmup < 0:
        raise ValueError("--steps, --rounds, --jobs and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    protocol = table_protocol(args.protocol, quick=False)
    if not protocol.student_overlay:
        raise ValueError(f"{args.protocol} has no student.overlay: there is nothing to compare fp32 with")
    runs = runs_root_for(protocol, args.runs)
    rows = {name: row for name, row in table_rows(args.rows).items() if row.key != TEACHER}
    main_keys = [r.key for r in TABLE.values() if r.kind in MAIN_KINDS and r.key != TEACHER]
    if args.measured_only:
        previous = args.out / "bench_cost.json"
        if not previous.is_file():
            raise FileNotFoundError(f"--measured-only needs a previous {previous}: run without it first")
        result = json.loads(previous.read_text())
        result.update({"measured": measured_runs(protocol, runs, [r.key for r in rows.values()]),
                       "table_wall": table_wall(protocol, runs, main_keys)})
        return write_result(result, args.out)
    result_rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cost_") as tmp:
        for name, row in rows.items():
            entry: dict[str, Any] = {"key": row.key, "kind": row.kind}
            if chain_ready(protocol, runs, row.key):
                print(f"[bench cost] {name} ({row.key})", flush=True)
                entry["probe"] = measure_row(protocol, runs, row.key, Path(tmp), args.steps, args.warmup, args.rounds)
            result_rows[name] = entry
    command = (f"python benchmarks/bench_cost.py --steps {args.steps} --rounds {args.rounds} --warmup {args.warmup} "
               f"--jobs {args.jobs} --threads {args.threads}" + (f" --rows {' '.join(args.rows)}" if args.rows else ""))
    result = {"protocol_version": protocol.version, "protocol_summary": protocol.summary(),
              "protocol_file": protocol_label(args.protocol, REPO), "overlay": protocol.student_overlay,
              "student_steps": protocol.student_steps, "seeds": list(protocol.run_seeds), "jobs": args.jobs,
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads,
              "machine": cpu_description(), "torch": torch.__version__,
              "load_average": [round(x, 2) for x in os.getloadavg()], "command": command, "runs_root": str(runs),
              "rows": result_rows, "measured": measured_runs(protocol, runs, [r.key for r in rows.values()]),
              "table_wall": table_wall(protocol, runs, main_keys)}
    return write_result(result, args.out)


def write_result(result: dict[str, Any], out: Path) -> int:
    """``bench_cost.{json,md}`` under ``out``; the Markdown is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    text = to_markdown(result)
    (out / "bench_cost.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
