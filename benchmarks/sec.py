"""SEC-Depth on the world under benchmarks/protocol.yaml: does learning from past selves help, and which part?

    .venv/bin/python benchmarks/sec.py                 # the full protocol → docs/results/sec.{json,md}
    .venv/bin/python benchmarks/sec.py --rows md2_deg_s5,md2+sec,sec_positive_only   # train these rows first
    .venv/bin/python benchmarks/sec.py --quick         # smoke version (runs/bench_quick) → docs/results/sec_quick.*

Every run comes from the one run registry (robustdepth.bench.protocol, ``runs/bench/<key>``): the cached
day-clear teacher and the students other tables also report (md4all_dd, acdepth, rosam) are trained once and
reused. Each student row costs one protocol student budget; finished rows cost only their evaluation, and
``--rows`` limits which rows are *trained* (finished rows are always reported). Rows (table name → registry key;
every student starts from the same teacher with the same budget; method: docs/methods.md § SEC-Depth):

* ``md2`` → ``md2_continued``: Monodepth2 continued self-supervised on clean frames.
* ``md2_deg_sS`` → ``md2_deg_sS`` (S ∈ {1, 5, 10}): Monodepth2 fed degraded inputs every S steps, no SECL.
* ``md2+sec`` → ``sec_monodepth2`` (S = 5), ``md2+sec_s1`` / ``md2+sec_s10``: the same inputs + SECL and the queue.
* ``sec_positive_only``: SECL reduced to JS(A, P) (no queue): what the negatives add is md2+sec against it.
* ``sec_frozen_queue``: the queue filled once after the warm-up and never refreshed.
* ``md2+sec_literal`` → ``sec_monodepth2_literal``: the notes' literal variance trigger (the previous default).
* ``…_seed43``: the rows that decide the claim (md2_deg_s5, md2+sec, sec_positive_only) with a second seed.
* ``md4all_dd`` / ``md4all_dd+sec``, ``acdepth`` / ``acdepth+sec``, ``rosam`` / ``rosam+sec``: each distillation
  recipe without and with the ``sec`` overlay.

For every row with a latency queue the table reads, from the run's last checkpoint (the queue's recorded state,
no re-run), the refreshes by reason, the forced-refresh rate per SECL step and the age distribution of the
negatives used. The verdict on the negative term is computed from the numbers: the seed-mean of md2+sec against
the seed-mean of sec_positive_only, compared with the seed noise measured on the same rows.

``--teacher CKPT`` imposes another teacher (rows trained from the cached one are then refused, naming the
differing key: use another ``--runs``). Every run is resumable: a finished run is reused, an interrupted
one continues bit-exactly (robustdepth.training.stages.ensure_run). A stored row whose queue was recorded by
the previous queue version (no age record: the literal trigger) is refused, naming the folder to delete.

The queue schedule is scaled to the short budget by the registry (robustdepth.training.stages.queue_schedule:
warm-up and T_u are 10 % of the student steps). s/step is wall time of a run's training call (set-up included)
divided by its steps; the machine may be shared, so the load average is recorded with it.

Run it from the repository root: run folders and the world are found relative to the working directory
(runs/bench*, data/world), the same paths every table and ``robustdepth bench`` record and share.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path
from typing import Any

import torch

from robustdepth.bench.protocol import (
    ADVERSE,
    RUN_REGISTRY,
    TEACHER,
    BenchProtocol,
    evaluate_run,
    method_row,
    protocol_flag,
    protocol_label,
    row_dir,
    run_row,
    runs_root_for,
    seed_noise,
    table_protocol,
)
from robustdepth.bench.script import run_script
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.data.base import color_key
from robustdepth.inference import DepthModel
from robustdepth.training.stages import finished_checkpoint, queue_schedule, read_timing

REPO = Path(__file__).resolve().parents[1]
# table row name → registry key
TABLE: dict[str, str] = {
    "md2": "md2_continued",
    "md2_deg_s5": "md2_deg_s5", "md2_deg_s5_seed43": "md2_deg_s5_seed43",
    "md2+sec": "sec_monodepth2", "md2+sec_seed43": "sec_monodepth2_seed43",
    "sec_positive_only": "sec_positive_only", "sec_positive_only_seed43": "sec_positive_only_seed43",
    "sec_frozen_queue": "sec_frozen_queue", "md2+sec_literal": "sec_monodepth2_literal",
    "md2_deg_s1": "md2_deg_s1", "md2+sec_s1": "sec_monodepth2_s1",
    "md2_deg_s10": "md2_deg_s10", "md2+sec_s10": "sec_monodepth2_s10",
    "md4all_dd": "md4all_dd", "md4all_dd+sec": "md4all_dd_sec", "acdepth": "acdepth", "acdepth+sec": "acdepth_sec",
    "rosam": "rosam", "rosam+sec": "rosam_sec",
}
DISTILLATION_RECIPES = ("md4all_dd", "acdepth", "rosam")
# the rows that decide whether the negatives add anything, each with its second-seed twin
SEEDED = {"md2_deg_s5": "md2_deg_s5_seed43", "md2+sec": "md2+sec_seed43",
          "sec_positive_only": "sec_positive_only_seed43"}


def bf16_storage_error(checkpoint: Path, protocol: BenchProtocol) -> dict[str, float]:
    """How much storing a network's parameters in bf16 (the queue's storage) moves its sigmoid disparity."""
    from robustdepth.data import build_dataset

    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    dataset = build_dataset(model.config, protocol.eval_split, train=False)
    images = torch.stack([dataset[i][color_key(0)] for i in range(0, len(dataset), max(1, len(dataset) // 8))])
    net = model.net
    with torch.no_grad():
        ref = net(images).disp[0]
        for p in net.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        rounded = net(images).disp[0]
    diff = (ref - rounded).abs()
    return {"mean_abs": float(diff.mean()), "max_abs": float(diff.max()), "frames": int(images.shape[0])}


@torch.no_grad()
def normalisation_gap(checkpoint: Path, protocol: BenchProtocol, per_condition: int = 8) -> dict[str, float]:
    """Per condition: mean per-pixel JS between the network's training-mode pass (BatchNorm batch statistics) and
    its eval-mode pass (running statistics) with the SAME weights — what a queue member in eval mode
    (``providers.latency_queue.norm: running``) differs from the anchor by before any weight has moved."""
    from robustdepth.data import build_dataset
    from robustdepth.losses.sec import pixel_js
    from robustdepth.providers.latency_queue import batch_statistics_

    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    dataset = build_dataset(model.config, protocol.eval_split, train=False)
    frames: dict[str, list[torch.Tensor]] = {}
    for i in range(len(dataset)):
        item = dataset[i]
        if len(frames.setdefault(item["condition"], [])) < per_condition:
            frames[item["condition"]].append(item[color_key(0)])
    running_net = model.net.eval()
    batch_net = batch_statistics_(copy.deepcopy(running_net))  # exactly what a `norm: batch` member runs
    gap = {}
    for condition, images in frames.items():
        batch = torch.stack(images)
        gap[condition] = float(pixel_js(batch_net(batch).disp[0], running_net(batch).disp[0], None, 64, None)[0])
    return gap


def queue_stats(checkpoint: Path, key: str) -> dict[str, Any] | None:
    """The latency queue's record of a finished run (refreshes by reason, forced-refresh rate per SECL step, age
    distribution of the negatives), read from its last checkpoint; None for rows without a queue."""
    from robustdepth.checkpoint import load_checkpoint
    from robustdepth.providers.latency_queue import queue_summary

    state = load_checkpoint(checkpoint).get("providers", {}).get("latency_queue", {}).get("_extra_state")
    if not state:
        return None
    if int(state.get("version", 1)) < 2:
        raise SystemExit(f"row {key!r}: {checkpoint} was trained with the previous latency queue (literal trigger, "
                         f"no record of its negatives): delete {checkpoint.parent.parent} and rerun")
    return queue_summary(state)


def adverse(row: dict[str, Any]) -> float:
    return float(row["metrics"]["adverse_mean"]["abs_rel"])


def seed_pairs(rows: dict[str, Any]) -> dict[str, float]:
    """|seed 42 − seed 43| adverse-mean AbsRel of each decisive row whose two seeds are both in the table."""
    return {name: abs(adverse(rows[name]) - adverse(rows[twin])) for name, twin in SEEDED.items()
            if name in rows and twin in rows}


def seed_mean(rows: dict[str, Any], name: str) -> tuple[float, int] | None:
    """Adverse-mean AbsRel of ``name`` averaged over the seeds present (value, number of seeds)."""
    values = [adverse(rows[n]) for n in (name, SEEDED.get(name)) if n is not None and n in rows]
    return (sum(values) / len(values), len(values)) if values else None


def verdict(rows: dict[str, Any], better: str, base: str, noise: float | None, what: str) -> str | None:
    """One computed sentence: is ``better`` lower (adverse-mean AbsRel, seed-mean) than ``base`` by more than
    ``noise``?"""
    a, b = seed_mean(rows, better), seed_mean(rows, base)
    if a is None or b is None:
        return None
    diff = b[0] - a[0]
    seeds = f"mean of {min(a[1], b[1])} seed(s)" if a[1] == b[1] else f"{a[1]} vs {b[1]} seeds"
    numbers = f"{better} {a[0]:.4f} vs {base} {b[0]:.4f} adverse-mean AbsRel ({seeds}, difference {diff:+.4f}"
    if noise is None:
        return f"{what}: {numbers}; no seed noise measured, so no verdict)."
    numbers += f", seed noise {noise:.4f})"
    if abs(diff) <= noise:
        return f"{what}: no — {numbers}: the difference is within the seed noise."
    return f"{what}: {'yes' if diff > 0 else 'no, it is worse'} — {numbers}."


def conclusions(rows: dict[str, Any], noise: float | None) -> list[str]:
    """The computed sentences the table closes with."""
    out = [verdict(rows, "md2+sec", "sec_positive_only", noise,
                   "Does SECL's negative term add anything beyond the positive-only control at this budget"),
           verdict(rows, "sec_positive_only", "md2_deg_s5", noise,
                   "Does the positive term JS(A, P) help beyond the degraded inputs alone"),
           verdict(rows, "md2+sec", "sec_frozen_queue", noise,
                   "Do evolving past selves beat a queue frozen after the warm-up"),
           verdict(rows, "md2+sec", "md2+sec_literal", noise,
                   "Does the stage-keeping queue beat the literal variance trigger")]
    return [line for line in out if line]


def age_cell(stats: dict[str, Any] | None) -> str:
    """``median [p10–p90] (max)`` of the negatives' ages, or – without a queue."""
    if not stats or "age" not in stats:
        return "–"
    age = stats["age"]
    return f"{age['median']} [{age['p10']}–{age['p90']}] ({age['max']})"


def refresh_cell(stats: dict[str, Any] | None) -> str:
    """``forced / periodic (forced per SECL step)``, or – without a queue."""
    if not stats:
        return "–"
    counts, rate = stats["counts"], stats["forced_rate"]
    return f"{counts.get('forced', 0)} / {counts.get('periodic', 0)} ({'–' if rate is None else f'{rate:.2f}'})"


def format_markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    conditions = [c for c in ("clear", *ADVERSE) if any(c in row["metrics"] for row in rows.values())]
    source = "quick smoke run" if result["quick"] else result.get("protocol_file", "benchmarks/protocol.yaml")
    lines = [f"# SEC-Depth on the world ({source})",
             "", f"Command: `{result['command']}`", "", f"Protocol: {result['protocol']}.", "",
             f"Teacher: `{result['teacher']}`; students: {result['student_steps']} steps, batch "
             f"{result['batch_size']}, seed {result['seed']} (rows `…_seed43`: seed 43); queue warm-up / T_u: "
             f"{result['queue_schedule']}. Runs: `{result['runs_root']}/<key>` (shared with the other tables). "
             "Method and choices: docs/methods.md § SEC-Depth.",
             "", "## AbsRel per condition (lower is better)", "",
             "| row | key | " + " | ".join(conditions) + " | adverse mean | δ1 adverse | s/step | overhead vs base "
             "| refreshes forced / periodic (forced per SECL step) | negative age, steps: median [p10–p90] (max) |",
             "|---|---|" + "---:|" * (len(conditions) + 6)]
    for name, row in rows.items():
        m = row["metrics"]
        cells = " | ".join(f"{m[c]['abs_rel']:.4f}" if c in m else "–" for c in conditions)
        overhead, s_step, stats = row.get("overhead_vs_base"), row.get("s_per_step"), row.get("queue")
        lines.append(f"| {name} | {row['key']} | {cells} | {m['adverse_mean']['abs_rel']:.4f} | "
                     f"{m['adverse_mean']['a1']:.4f} | {'–' if s_step is None else f'{s_step:.3f}'} | "
                     f"{'' if overhead is None else f'{overhead:+.1%}'} | {refresh_cell(stats)} | {age_cell(stats)} |")
    lines += ["", "## Comparisons (adverse-mean AbsRel)", ""]
    for line in result["comparisons"]:
        lines.append(f"- {line}")
    pairs, noise = result.get("seed_pairs") or {}, result.get("seed_noise")
    if pairs or noise:
        parts = [f"{name} {value:.4f}" for name, value in pairs.items()]
        if noise:
            parts.append(f"{' vs '.join(noise['rows'])} {noise['adverse_abs_rel']:.4f}")
        lines += ["", "Seed noise (|seed 42 − seed 43| adverse-mean AbsRel of the same row): " + ", ".join(parts)
                  + f". The verdicts below use the largest, {result['noise']:.4f}."]
    if result.get("conclusions"):
        lines += ["", "## Verdicts (computed from the rows above)", ""]
        lines += [f"- {line}" for line in result["conclusions"]]
    if result.get("rows_not_run"):
        lines += ["", "Rows not trained yet (rerun with them in --rows, or without --rows): "
                  + ", ".join(result["rows_not_run"]) + "."]
    err = result.get("bf16_storage_error")
    if err:
        lines += ["", "bf16 queue storage: rounding the parameters of `md2+sec` to bf16 moves its sigmoid disparity "
                      f"by {err['mean_abs']:.2e} on average (max {err['max_abs']:.2e}) over {err['frames']} "
                      "test frames."]
    gap = result.get("normalisation_gap")
    if gap:
        cells = ", ".join(f"{c} {v:.2f}" for c, v in gap.items())
        lines += ["", "Normalisation gap (why queue members use `providers.latency_queue.norm: batch`): with the "
                      "teacher's weights, the per-pixel JS between its training-mode pass (BatchNorm batch "
                      f"statistics) and its eval-mode pass (running statistics) is {cells}, far above both margins "
                      "(α1 ≤ 0.09 after the warm-up, α2 = 0.005). Members in eval mode (`norm: running`) are "
                      "therefore never inside the margins and SECL's negative term never acts."]
    if result.get("secl_overhead_vs_md2_deg_s5") is not None:
        lines += ["", f"SECL + queue alone (md2+sec vs md2_deg_s5, same inputs): "
                      f"{result['secl_overhead_vs_md2_deg_s5']:+.1%} s/step."]
    lines += ["", f"Load average during the run: {result['load_average']} (2 shared cores: s/step is indicative)."]
    if result.get("refresh_probe"):
        lines += ["", probe_markdown(result["refresh_probe"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def comparisons(rows: dict[str, Any], noise: float | None = None) -> list[str]:
    """Each pair's adverse means; differences within the seed noise (``noise``) are called so."""
    pairs = [("md2", "md2+sec"), ("md2_deg_s5", "md2+sec"), ("md2_deg_s5", "sec_positive_only"),
             ("sec_positive_only", "md2+sec"), ("sec_frozen_queue", "md2+sec"), ("md2+sec_literal", "md2+sec"),
             ("md2_deg_s1", "md2+sec_s1"), ("md2_deg_s10", "md2+sec_s10")]
    pairs += [(r, f"{r}+sec") for r in DISTILLATION_RECIPES]
    out = []
    for base, other in pairs:
        if base in rows and other in rows:
            a, b = adverse(rows[other]), adverse(rows[base])
            label = "better" if a < b else "not better"
            if noise is not None and abs(a - b) <= noise:
                label += f", within the seed noise of {noise:.4f}"
            out.append(f"{other} vs {base}: {a:.4f} vs {b:.4f} ({label})")
    return out


def base_of(name: str) -> str | None:
    """The row a row's s/step overhead is measured against (the host without SEC)."""
    if name.endswith("+sec"):
        return name[: -len("+sec")]
    return "md2" if name.startswith(("md2+sec", "md2_deg", "sec_")) else None  # overhead of the whole method


def overhead(rows: dict[str, Any], name: str, base: str | None) -> float | None:
    """Relative s/step of ``name`` over ``base`` (None when either was never timed)."""
    if base not in rows:
        return None
    mine, theirs = rows[name].get("s_per_step"), rows[base].get("s_per_step")
    return mine / theirs - 1.0 if mine and theirs else None


def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository root when it lies inside it (how the registry stores paths)."""
    path = path.resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


PROBE_RULES = {"margin": (), "variance": ("providers.latency_queue.trigger=variance",)}


def refresh_probe(steps: int = 60, batch_size: int = 2, every_n_steps: int = 1, size: tuple[int, int] = (64, 96),
                  runs: Path = Path("runs/sec_refresh_probe")) -> dict[str, Any]:
    """The queue's behaviour under each trigger rule on a short run of the tiny world (cheap, no evaluation):
    the same small sec_monodepth2 run (warm-up and T_u 10 % of the steps, as the protocol scales them) once with the
    margin trigger and once with the notes' literal variance trigger; per rule the refreshes by reason, the
    forced-refresh rate per SECL step and the age distribution of the negatives (from the last checkpoint)."""
    from robustdepth.bench.protocol import BenchProtocol, protocol_world, quick_protocol
    from robustdepth.checkpoint import load_checkpoint
    from robustdepth.providers.latency_queue import queue_summary
    from robustdepth.training.trainer import train

    protocol = quick_protocol(BenchProtocol.load(REPO / "benchmarks" / "protocol.yaml"))
    root = protocol_world(protocol)
    warmup, refresh = queue_schedule(steps)
    common = ["data.dataset=world", f"data.root={root}", f"data.height={size[0]}",
              f"data.width={size[1]}", f"optim.batch_size={batch_size}", f"optim.max_steps={steps}",
              f"degrade.every_n_steps={every_n_steps}", f"providers.latency_queue.warmup_steps={warmup}",
              f"providers.latency_queue.refresh_every={refresh}", "data.num_workers=0", "train.progress=false",
              "train.log_every=1000", "train.image_every=1000000", f"train.ckpt_every={steps}"]
    out: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "every_n_steps": every_n_steps, "size": list(size),
                           "warmup": warmup, "refresh_every": refresh, "world": str(root),
                           "command": f"python benchmarks/sec.py --refresh-probe {steps}", "rules": {}}
    for rule, extra in PROBE_RULES.items():
        run_dir = runs / f"{rule}_{steps}"
        last = run_dir / "checkpoints" / "last.pt"
        if not last.is_file() or int(load_checkpoint(last)["step"]) < steps:
            train(load_config("sec_monodepth2", [*common, *extra]), run_dir=run_dir)
        state = load_checkpoint(last)["providers"]["latency_queue"]["_extra_state"]
        out["rules"][rule] = {**queue_summary(state), "refresh_log": state["refresh_log"]}
    return out


def probe_markdown(probe: dict[str, Any]) -> str:
    """The probe as a section of docs/results/sec.md."""
    lines = ["## Latency-queue refreshes: margin trigger vs the literal variance trigger", "",
             f"Command: `{probe['command']}` (sec_monodepth2 on the tiny world from untrained weights, "
             f"{probe['steps']} steps at batch {probe['batch_size']} and {probe['size'][0]}×{probe['size'][1]}, "
             f"S = {probe['every_n_steps']}, warm-up / T_u "
             f"{probe['warmup']} / {probe['refresh_every']} steps, j = 3; numbers of the queue's own record).", "",
             "| trigger | SECL steps with a negative | forced | periodic | forced per SECL step "
             "| negative age, steps: min / median / p90 / max |", "|---|---:|---:|---:|---:|---|"]
    for rule, r in probe["rules"].items():
        age = r.get("age")
        ages = "–" if not age else f"{age['min']} / {age['median']} / {age['p90']} / {age['max']}"
        rate = "–" if r["forced_rate"] is None else f"{r['forced_rate']:.2f}"
        lines.append(f"| {rule} | {r['negatives']} | {r['counts'].get('forced', 0)} | {r['counts'].get('periodic', 0)} "
                     f"| {rate} | {ages} |")
    return "\n".join(lines) + "\n"


def selected_rows(rows_arg: str | None, only: list[str] | None) -> set[str] | None:
    """Table names to train from ``--rows a,b`` / ``--only a b`` (table names or registry keys); None = all."""
    names = [n.strip() for n in (rows_arg or "").split(",") if n.strip()] + list(only or [])
    if rows_arg is None and only is None:
        return None
    by_key = {key: name for name, key in TABLE.items()}
    unknown = [n for n in names if n not in TABLE and n not in by_key]
    if unknown:
        raise SystemExit(f"unknown row(s) {unknown}; rows: {', '.join(TABLE)} (or their registry keys)")
    return {by_key.get(n, n) for n in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, few steps (smoke test of the pipeline)")
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--teacher", default=None,
                        help="teacher checkpoint (default: the registry's cached one, else trained once)")
    parser.add_argument("--runs", default=None,
                        help="runs root, relative to the repo root (default runs/bench, --quick: runs/bench_quick)")
    parser.add_argument("--rows", default=None,
                        help="comma-separated rows to train (table names or registry keys; default all); "
                             "finished rows are reported either way")
    parser.add_argument("--only", nargs="*", default=None, help="the same as --rows, space-separated")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    parser.add_argument("--refresh-probe", type=int, default=0, metavar="STEPS",
                        help="only measure the queue's refreshes and negative ages under both trigger rules on a "
                             "STEPS-step tiny-world run (→ OUT/sec_refresh_probe.json; the table then includes it)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train_only = selected_rows(args.rows, args.only)
    if args.refresh_probe:
        out = Path(args.out).resolve()
        probe = refresh_probe(args.refresh_probe)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sec_refresh_probe.json").write_text(json.dumps(probe, indent=1) + "\n")
        print(probe_markdown(probe))
        return 0

    protocol = table_protocol(args.protocol, args.quick)
    out = Path(args.out).resolve()
    teacher_given = repo_relative(Path(args.teacher)) if args.teacher else None
    runs = runs_root_for(protocol, args.runs)
    done: dict[str, tuple[Path, float | None]] = {TEACHER: (teacher_given, None)} if teacher_given else {}
    teacher = run_row(protocol, TEACHER, runs, done)[0]
    rows: dict[str, Any] = {}
    for name, key in TABLE.items():  # finished rows are always reported; --rows limits training
        if train_only is not None and name not in train_only and finished_checkpoint(row_dir(runs, key)) is None:
            continue
        print(f"[sec bench] {name} ({key}): {RUN_REGISTRY[key].recipe} {' '.join(RUN_REGISTRY[key].extra)}", flush=True)
        last, s_per_step = run_row(protocol, key, runs, done)
        rows[name] = {"key": key, "recipe": RUN_REGISTRY[key].recipe, "overrides": list(RUN_REGISTRY[key].extra),
                      "checkpoint": str(last), "s_per_step": s_per_step, "timing": read_timing(row_dir(runs, key)),
                      "queue": queue_stats(last, key), "metrics": method_row(evaluate_run(protocol, last))}
        print(f"[sec bench] {name}: adverse AbsRel {adverse(rows[name]):.4f}", flush=True)
    for name, row in rows.items():
        row["overhead_vs_base"] = overhead(rows, name, base_of(name))
    # same inputs and degradations: SECL + queue alone
    secl_overhead = overhead(rows, "md2+sec", "md2_deg_s5") if "md2+sec" in rows else None
    warmup, refresh = queue_schedule(protocol.student_steps)
    md4all_noise = None if args.quick else seed_noise(protocol, runs)
    pairs = seed_pairs(rows)
    candidates = list(pairs.values()) + ([md4all_noise["adverse_abs_rel"]] if md4all_noise else [])
    noise = max(candidates) if candidates else None
    command = "python benchmarks/sec.py" + (" --quick" if args.quick else "") + protocol_flag(args.protocol, REPO) + (
        f" --rows {','.join(sorted(train_only))}" if train_only is not None else "")
    result = {
        "quick": args.quick, "command": command,
        "protocol": protocol.summary(), "protocol_file": protocol_label(args.protocol, REPO),
        "runs_root": str(runs), "teacher": str(teacher), "seed": protocol.seed,
        "student_steps": protocol.student_steps, "batch_size": protocol.student_batch_size,
        "queue_schedule": f"{warmup} / {refresh} steps", "rows": rows,
        "comparisons": comparisons(rows, noise), "seed_noise": md4all_noise, "seed_pairs": pairs, "noise": noise,
        "conclusions": conclusions(rows, noise),
        "secl_overhead_vs_md2_deg_s5": secl_overhead,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows_not_run": [n for n in TABLE if n not in rows],
        "config_md2_sec": to_dict(load_config("sec_monodepth2"))["losses"]["sec"],
        "config_queue": to_dict(load_config("sec_monodepth2"))["providers"]["latency_queue"],
    }
    if not args.quick:
        result["normalisation_gap"] = normalisation_gap(Path(teacher), protocol)
    probe_file = out / "sec_refresh_probe.json"
    if probe_file.is_file():
        result["refresh_probe"] = json.loads(probe_file.read_text())
    if "md2+sec" in rows:
        result["bf16_storage_error"] = bf16_storage_error(Path(rows["md2+sec"]["checkpoint"]), protocol)
    out.mkdir(parents=True, exist_ok=True)
    stem = "sec_quick" if args.quick else "sec"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"{stem}.md").write_text(format_markdown(result))
    print(format_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
