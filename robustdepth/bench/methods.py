"""``robustdepth bench methods``: every method side by side under the one benchmark protocol, with seeds.

Trains (or reuses) the protocol's day-clear teacher and every row of the table, each with every seed of the
protocol (``seeds:``; the chain — teacher, initialisation, Φ_day — is the protocol seed's, shared by every
seed), from the one run registry (robustdepth.bench.protocol: ``RUNS/<key>`` for the protocol's seed,
``RUNS/<key>@seed<k>`` for another; the same runs benchmarks/distillation.py, rosam.py and sec.py report).
It evaluates each run per condition on the world's test split (per-frame metrics kept beside the results),
scores the protocol seed's checkpoints on the RoboDepth corruptions of clear test frames, and compares every
method with its paper baseline by a paired bootstrap over seeds and test frames (robustdepth.bench.stats).
It writes ``methods.{json,md}`` (mean over seeds, the paired differences with 95 % intervals and a
resolved/unresolved verdict, a reading computed from them), a forest plot of every effect per condition
and a qualitative grid (one test frame in every condition × each row's protocol-seed model). Every stage
is cached: an interrupted benchmark continues where it stopped, row by row and seed by seed. From the
repository root::

    robustdepth bench methods --protocol benchmarks/protocol.yaml            # runs/bench_v2 → docs/results/methods.*
    robustdepth bench methods --protocol benchmarks/protocol.yaml --quick    # smoke: methods_quick.* (not results)
    robustdepth bench methods --rows md4all_dd acdepth --seeds 42 43         # a subset (rows by registry key)
    robustdepth bench methods --protocol benchmarks/protocol_v1.yaml         # the committed v1 table (runs/bench)
    robustdepth bench methods --device cuda                                  # the same runs on a GPU

The cost of a full table is in docs/results/bench_cost.md. The rows and comparisons are the module
constants TABLE and COMPARISONS; control and oracle rows appear (labelled) when their keys are registered.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.bench.protocol import (
    ADVERSE,
    RUN_REGISTRY,
    TABLE_METRICS,
    TEACHER,
    BenchProtocol,
    evaluate_run,
    frame_metrics,
    method_row,
    rows_to_markdown,
    run_row,
    runs_root_for,
    table_protocol,
)
from robustdepth.bench.stats import ADVERSE_MEAN, BETTER, CONDITIONS, UNRESOLVED, WORSE, compare
from robustdepth.config import ConfigError

CORRUPTION_FRAMES = 6
BOOTSTRAP_REPLICATES = 2000


@dataclass(frozen=True)
class TableRow:
    """A row of the methods table: its registry key (``TEACHER`` or a key of RUN_REGISTRY) and its kind —
    ``method`` (a seed method), ``baseline`` (a paper baseline at the same budget), ``reference`` (one run,
    not seeded), ``control`` or ``oracle`` (rows of the method issues; never a method result)."""

    key: str
    kind: str = "method"


#: Rows by their table label, in table order.
TABLE: dict[str, TableRow] = {
    "Monodepth2 (teacher)": TableRow(TEACHER, "reference"),
    # the teacher continued self-supervised, no degradation, same budget: separates *more steps* from *method*
    "Monodepth2 continued": TableRow("md2_continued", "baseline"),
    "md4all-DD": TableRow("md4all_dd"),
    "ACDepth": TableRow("acdepth"),
    "Syn2Real-RA": TableRow("syn2real_ra"),
    "RoSAMDepth": TableRow("rosam"),
    # SEC-Depth's host: the same degraded-view schedule (every 5th step) without SECL
    "MD2 + degraded views": TableRow("md2_deg_s5", "baseline"),
    "MD2+SEC": TableRow("sec_monodepth2"),
    "all": TableRow("all"),
    "all − SEC": TableRow("all_no_sec"),  # ACDepth + RoSAMDepth terms only
    "SEC positive-only (control)": TableRow("sec_positive_only", "control"),
    "ACDepth, oracle prior (oracle)": TableRow("acdepth_oracle", "oracle"),
    "RoSAMDepth, oracle masks, coverage-matched (oracle)": TableRow("rosam_world_masks", "oracle"),
}

#: (method, baseline, what the difference measures) — each method against the baseline its paper uses.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("Monodepth2 continued", "Monodepth2 (teacher)", "more steps alone"),
    ("md4all-DD", "Monodepth2 continued", "md4all-DD vs Monodepth2 (same budget)"),
    ("ACDepth", "md4all-DD", "ACDepth vs md4all-DD"),
    ("Syn2Real-RA", "md4all-DD", "Syn2Real-RA vs md4all-DD"),
    ("RoSAMDepth", "Syn2Real-RA", "RoSAMDepth vs Syn2Real-RA"),
    ("MD2+SEC", "MD2 + degraded views", "SEC vs its host without SECL"),
    ("all", "ACDepth", "all vs its ACDepth part"),
    ("all", "RoSAMDepth", "all vs its RoSAMDepth part"),
    ("all", "all − SEC", "all vs all without its SEC part"),
    ("MD2+SEC", "SEC positive-only (control)", "SECL's negatives (control)"),
    ("ACDepth, oracle prior (oracle)", "ACDepth", "a perfect OGD prior (oracle)"),
    ("RoSAMDepth, oracle masks, coverage-matched (oracle)", "RoSAMDepth", "perfect masks (oracle)"),
)


def table_rows(keys: list[str] | None = None) -> dict[str, TableRow]:
    """The table's rows whose keys are registered (controls appear once their method issue adds them),
    optionally only ``keys`` (registry keys; the teacher is always there: it is every chain's root)."""
    rows = {name: row for name, row in TABLE.items() if row.key == TEACHER or row.key in RUN_REGISTRY}
    if keys:
        unknown = sorted(set(keys) - {row.key for row in rows.values()})
        if unknown:
            raise ConfigError(f"--rows: {', '.join(unknown)} not in the methods table; rows: "
                             f"{', '.join(row.key for row in rows.values())}")
        rows = {name: row for name, row in rows.items() if row.key in keys or row.key == TEACHER}
    return rows


def row_seeds(protocol: BenchProtocol, row: TableRow, seeds: list[int] | None = None) -> list[int]:
    """The seeds a row is trained with: the teacher only with the protocol's seed, the rest with every
    protocol seed (or the ``--seeds`` subset)."""
    if row.key == TEACHER:
        return [protocol.seed]
    return list(seeds) if seeds else list(protocol.run_seeds)


def corrupted_clear_frames(protocol: BenchProtocol, frames: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """GT of ``frames`` clear test frames and their RoboDepth corruptions (made once, shared by all rows)."""
    from robustdepth.bench.corruptions import clear_frames
    from robustdepth.configure import load_config
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
    model = DepthModel.from_checkpoint(checkpoint, device=protocol.device or "auto")
    eval_protocol = get_protocol(protocol.eval_protocol)

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


def table_units(protocol: BenchProtocol, rows: dict[str, TableRow], seeds: list[int] | None = None,
                ) -> list[tuple[str, int]]:
    """Every (row label, seed) run of the table, seed-major (all rows of the protocol's seed, then the next
    seed: a stopped table has whole seeds)."""
    order = sorted({s for row in rows.values() for s in row_seeds(protocol, row, seeds)},
                   key=lambda s: (s != protocol.seed, s))
    return [(name, seed) for seed in order for name, row in rows.items() if seed in row_seeds(protocol, row, seeds)]


def train_table(protocol: BenchProtocol, runs: Path, rows: dict[str, TableRow], seeds: list[int] | None = None,
                jobs: int = 1) -> dict[str, dict[int, tuple[Path, float | None]]]:
    """Every (row, seed) run (:func:`table_units` order); {label: {seed: (checkpoint, s/step)}}. With
    ``jobs`` > 1 the runs train first in that many worker processes (:func:`train_parallel`); the loop below
    then only collects them (a finished run is reused, never retrained)."""
    units = table_units(protocol, rows, seeds)
    if jobs > 1:
        train_parallel(protocol, runs, [(rows[name].key, seed) for name, seed in units], jobs)
    done: dict[str, tuple[Path, float | None]] = {}
    runs_by_row: dict[str, dict[int, tuple[Path, float | None]]] = {name: {} for name in rows}
    for name, seed in units:
        runs_by_row[name][seed] = run_row(protocol, rows[name].key, runs, done, seed=seed)
    return runs_by_row


def chain_keys(key: str) -> set[str]:
    """The registry rows ``key``'s chain needs (its teacher, initialisation and Φ_day, recursively; never the
    protocol's teacher, which :func:`train_parallel` trains first)."""
    if key == TEACHER:
        return set()
    spec = RUN_REGISTRY[key]
    direct = {k for k in (spec.teacher, spec.init_row, spec.day) if k not in (None, TEACHER)}
    return direct.union(*(chain_keys(k) for k in direct))


def _init_worker(threads: int) -> None:
    """A training worker's intra-op threads: the machine's cores shared evenly between the workers (two
    workers with two threads each would make every OpenMP barrier wait for a descheduled partner)."""
    import torch

    torch.set_num_threads(threads)


def _train_unit(protocol: BenchProtocol, runs: Path, key: str, seed: int) -> tuple[Path, float | None]:
    return run_row(protocol, key, runs, seed=seed)


def worker_pool(jobs: int) -> Any:
    """``jobs`` spawned training processes, the cores shared evenly between them (:func:`_init_worker`). Each
    run gets a fresh process (``max_tasks_per_child=1``): memory a finished run's process held (its networks,
    frozen models, caches; the allocator rarely hands it back) never adds to the next run's."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads,), max_tasks_per_child=1)


def train_parallel(protocol: BenchProtocol, runs: Path, units: list[tuple[str, int]], jobs: int) -> None:
    """Train ``units`` ((registry key, seed) pairs) in ``jobs`` worker processes, each as soon as its chain has
    finished (the chain rows are trained with the protocol's seed first, as :func:`run_row` would).

    The teacher and every file that rows share — Syn2Real's day histograms, the felzenszwalb mask cache — are
    made here, in this process, before a unit that needs them starts (:func:`row_config` writes them), so two
    workers never write the same file; a run folder is locked by the trainer, so two never train the same run.
    A failed unit does not stop the others; the first failure is raised once every started unit has ended
    (finished runs stay finished, an interrupted one resumes on the next call). A worker process that dies
    (killed, e.g. by the kernel when memory runs out) breaks the whole pool: its units and the others that were
    running restart once in a fresh pool, from their last checkpoints; a unit lost twice is a
    :class:`ChildProcessError`."""
    from concurrent.futures import FIRST_COMPLETED, Future, wait
    from concurrent.futures.process import BrokenProcessPool

    from robustdepth.bench.protocol import row_config, row_inputs

    done: dict[str, tuple[Path, float | None]] = {}
    run_row(protocol, TEACHER, runs, done)
    units = [u for u in units if u[0] != TEACHER]  # trained above
    chain = {(k, protocol.seed) for key, _ in units for k in chain_keys(key)}
    pending = sorted(set(units) | chain, key=lambda u: (u not in chain, u[1] != protocol.seed, u[1],
                                                        units.index(u) if u in units else -1))
    finished: set[str] = set()  # keys whose protocol-seed run has finished (what a chain needs)
    failures: list[BaseException] = []
    restarted: set[tuple[str, int]] = set()
    pool = worker_pool(jobs)
    running: dict[Future[tuple[Path, float | None]], tuple[str, int]] = {}
    try:
        while pending or running:
            for unit in [u for u in pending if chain_keys(u[0]) <= finished]:
                if len(running) >= jobs:
                    break
                key, seed = unit
                if not failures:  # after a failure start nothing new; let the running units finish
                    row_config(protocol, key, **row_inputs(protocol, key, runs, done))  # shared files, here
                    running[pool.submit(_train_unit, protocol, runs, key, seed)] = unit
                pending.remove(unit)
            if not running:
                if pending and not failures:
                    raise RuntimeError(f"benchmark rows wait on a chain that cannot finish: {sorted(pending)}")
                break
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in ended:
                unit = running.pop(future)
                try:
                    future.result()
                except BrokenProcessPool:
                    broken = True
                    running[future] = unit  # lost with the pool: handled below with the others
                    continue
                except Exception as err:  # reported once the other workers have ended
                    failures.append(err)
                    continue
                if unit[1] == protocol.seed:
                    finished.add(unit[0])
            if broken:
                lost = sorted(running.values())
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                twice = [u for u in lost if u in restarted]
                if twice:
                    failures.append(ChildProcessError(
                        f"the training worker of {', '.join(f'{k} (seed {s})' for k, s in twice)} died twice "
                        "(killed, e.g. out of memory?); finished runs are kept and interrupted ones resume from "
                        "their last checkpoint: free memory or use --jobs 1, and run the same command again"))
                restarted.update(lost)
                pending = [u for u in lost if u not in twice] + pending
                pool = worker_pool(jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise failures[0]


def mean_row(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The seeds' mean of each metric (and s/step over the timed seeds), with the seeds' spread (sample sd)
    of clear and adverse-mean AbsRel."""
    rows = list(per_seed.values())
    out: dict[str, Any] = {}
    for part in ("clear", *ADVERSE, "adverse_mean"):
        if all(part in r for r in rows):
            out[part] = {m: float(np.mean([r[part][m] for r in rows])) for m in TABLE_METRICS}
    if "clear" in out and "adverse_mean" in out:
        out["gap_abs_rel"] = out["adverse_mean"]["abs_rel"] - out["clear"]["abs_rel"]
    timed = [r["s_per_step"] for r in rows if "s_per_step" in r]
    if timed:
        out["s_per_step"] = float(np.mean(timed))
    if len(rows) > 1:
        out["seed_sd"] = {f"{part}_abs_rel": float(np.std([r[part]["abs_rel"] for r in rows], ddof=1))
                          for part in ("clear", "adverse_mean") if part in out}
    return out


def comparisons(protocol: BenchProtocol, checkpoints: dict[str, dict[int, Path]], rows: dict[str, TableRow],
                replicates: int = BOOTSTRAP_REPLICATES) -> list[dict[str, Any]]:
    """Every COMPARISONS pair whose two rows are in the table: the paired bootstrap of AbsRel over the seeds
    both have (a one-seed reference baseline pairs with every seed of the method)."""
    out = []
    for method, baseline, measures in COMPARISONS:
        if method not in checkpoints or baseline not in checkpoints:
            continue
        if rows[baseline].kind == "reference":
            seeds = sorted(checkpoints[method])
            base = [frame_metrics(protocol, next(iter(checkpoints[baseline].values())))]
        else:
            seeds = sorted(set(checkpoints[method]) & set(checkpoints[baseline]))
            if not seeds:
                continue
            base = [frame_metrics(protocol, checkpoints[baseline][s]) for s in seeds]
        meth = [frame_metrics(protocol, checkpoints[method][s]) for s in seeds]
        result = compare(meth, base, "abs_rel", replicates=replicates)
        out.append({"method": method, "baseline": baseline, "measures": measures, "seed_list": seeds,
                    "kind": next((rows[n].kind for n in (method, baseline) if rows[n].kind in ("control", "oracle")),
                                 "method"), **result})
    return out


def run(protocol: BenchProtocol, out: Path, runs: Path, quick: bool = False,
        corruption_frames: int = CORRUPTION_FRAMES, rows: list[str] | None = None,
        seeds: list[int] | None = None, replicates: int = BOOTSTRAP_REPLICATES, jobs: int = 1) -> dict[str, Any]:
    """Train/reuse, evaluate, compare and write the table; returns what methods.json holds."""
    table = table_rows(rows)
    trained = train_table(protocol, runs, table, seeds, jobs)
    checkpoints = {name: {s: ckpt for s, (ckpt, _) in by_seed.items()} for name, by_seed in trained.items()}
    gts, images = corrupted_clear_frames(protocol, corruption_frames)
    result_rows: dict[str, dict[str, Any]] = {}
    for name, by_seed in trained.items():
        per_seed = {s: method_row(evaluate_run(protocol, ckpt), s_step) for s, (ckpt, s_step) in by_seed.items()}
        first = checkpoints[name][min(by_seed, key=lambda s: (s != protocol.seed, s))]
        result_rows[name] = {**mean_row(per_seed), "key": table[name].key, "kind": table[name].kind,
                             "seeds": sorted(per_seed), "per_seed": {str(s): r for s, r in per_seed.items()},
                             "corruptions": corruption_scores(first, gts, images, protocol)}
    compared = comparisons(protocol, checkpoints, table, replicates)
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(protocol.version, quick)
    forest_plot(compared, out / f"{stem}_forest.png", protocol.version)
    qualitative_grid(protocol, {n: c for n, c in checkpoints.items() if table[n].kind in ("method", "reference")},
                     out / f"{stem}_grid.png")
    result = {"protocol_version": protocol.version, "protocol_summary": protocol.summary(),
              "subset_rows": rows or [], "subset_seeds": seeds or [],
              "protocol": {k: str(v) for k, v in protocol.__dict__.items()}, "quick": quick,
              "seeds": sorted({s for r in result_rows.values() for s in r["seeds"]}), "rows": result_rows,
              "comparisons": compared, "bootstrap": {"replicates": replicates, "level": 0.95,
                                                     "scheme": "robustdepth/bench/stats.py (module docstring)"},
              "runs_root": str(runs), "corruption_frames": corruption_frames,
              "checkpoints": {n: {str(s): str(c) for s, c in by.items()} for n, by in checkpoints.items()}}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(to_markdown(result, stem))
    return result


CURRENT_VERSION = 2


def output_stem(version: int, quick: bool) -> str:
    """``methods`` for the current protocol version, ``methods_v<N>`` for an older one (a rerun of v1 never
    overwrites the current table), ``_quick`` appended for smoke runs."""
    stem = "methods" if version == CURRENT_VERSION else f"methods_v{version}"
    return f"{stem}_quick" if quick else stem


def qualitative_grid(protocol: BenchProtocol, checkpoints: dict[str, dict[int, Path]], out_png: Path) -> Path:
    """One test frame in every condition × each row's protocol-seed (else first-seed) model."""
    from robustdepth.demo import world_condition_panel
    from robustdepth.inference import DepthModel

    models = {name: DepthModel.from_checkpoint(by_seed.get(protocol.seed, by_seed[min(by_seed)]),
                                               device=protocol.device or "auto")
              for name, by_seed in checkpoints.items()}
    return world_condition_panel(models, protocol.world_root, out_png, width_inches=2.0)


VERDICT_COLOURS = {BETTER: "tab:green", WORSE: "tab:red", UNRESOLVED: "tab:gray"}


def forest_plot(compared: list[dict[str, Any]], out_png: Path, version: int) -> Path:
    """Every comparison's AbsRel difference (method − baseline, labelled "method vs baseline") with its 95 %
    interval, one panel per condition and the adverse mean; green = resolved better, red = resolved worse,
    grey = unresolved."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*CONDITIONS, ADVERSE_MEAN]
    labels = [f"{c['method']} vs {c['baseline']}" for c in compared]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.3 * len(columns) + 3.5, 0.42 * max(1, len(labels)) + 1.4),
                             sharey=True, squeeze=False)
    y = np.arange(len(labels))[::-1]
    for ax, column in zip(axes[0], columns, strict=True):
        for yi, comp in zip(y, compared, strict=True):
            e = comp["effects"].get(column)
            if e is None:
                continue
            ax.errorbar(e["mean"], yi, xerr=[[e["mean"] - e["low"]], [e["high"] - e["mean"]]], fmt="o", ms=4,
                        color=VERDICT_COLOURS[e["verdict"]], capsize=2)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(column.replace("_", " "), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.set_xlabel("Δ AbsRel", fontsize=8)
    axes[0][0].set_yticks(y, labels, fontsize=7)
    fig.suptitle(f"Paired differences, 95 % bootstrap intervals over seeds × frames (protocol v{version})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _cell(effect: dict[str, Any] | None) -> str:
    if effect is None:
        return "–"
    mark = {BETTER: " ✓", WORSE: " ✗", UNRESOLVED: ""}[effect["verdict"]]
    return f"{effect['mean']:+.4f} [{effect['low']:+.4f}, {effect['high']:+.4f}]{mark}"


def to_markdown(result: dict[str, Any], stem: str) -> str:
    quick = result["quick"]
    version = result["protocol_version"]
    path = "benchmarks/protocol.yaml" if version == CURRENT_VERSION else f"benchmarks/protocol_v{version}.yaml"
    command = f"robustdepth bench methods --protocol {path}{' --quick' if quick else ''}{subset_flags(result)}"
    seeds = ", ".join(map(str, result["seeds"]))
    summary = result["protocol_summary"].split(": ", 1)[-1]  # "protocol vN: …" — the version goes in bold
    note = (f"{'QUICK smoke run — not a result. ' if quick else ''}**Protocol v{version}**: {summary}. "
            f"Command: `{command}`. Each row is the mean over its seeds ({seeds}; the "
            "teacher has one); every student starts from the weights of its chain's model as the registry says "
            "(robustdepth/bench/protocol.py RUN_REGISTRY). Evaluation per condition on the split's own renders of each "
            "weather (0.1–80 m, per-image median scaling). Gap = adverse-mean AbsRel − clear AbsRel; s/step = mean "
            "wall seconds per training step over the seeds this machine timed.")
    rows = result["rows"]
    lines = [rows_to_markdown(rows, f"All methods side by side (protocol v{version})", note), "",
             "| row | kind | seeds | seed sd, clear AbsRel | seed sd, adverse AbsRel | mCE | mRR |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        sd = r.get("seed_sd", {})
        c = r["corruptions"]
        spread = [f"{sd[k]:.4f}" if k in sd else "–" for k in ("clear_abs_rel", "adverse_mean_abs_rel")]
        lines.append(f"| {name} | {r['kind']} | {', '.join(map(str, r['seeds']))} | {' | '.join(spread)} | "
                     f"{100 * c['mCE']:.1f} % | {100 * c['mRR']:.1f} % |")
    lines += ["", "mCE/mRR: RoboDepth corruptions of "
              f"{result['corruption_frames']} clear test frames, protocol-seed model, reference MonoDepth2-R18 "
              "(KITTI-C published row).", "", *comparison_table(result), "", *reading(result), "",
              f"![Paired differences per condition]({stem}_forest.png)", "",
              f"![One test frame in every condition]({stem}_grid.png)", ""]
    return "\n".join(lines)


def subset_flags(result: dict[str, Any]) -> str:
    """`` --rows …`` / `` --seeds …`` when the table was made for a subset (its command says so)."""
    rows = result.get("subset_rows")
    seeds = result.get("subset_seeds")
    return (f" --rows {' '.join(rows)}" if rows else "") + (f" --seeds {' '.join(map(str, seeds))}" if seeds else "")


def comparison_table(result: dict[str, Any]) -> list[str]:
    """Method − baseline AbsRel per condition and on the adverse mean: mean [95 % interval], ✓ resolved better,
    ✗ resolved worse, no mark unresolved."""
    b = result["bootstrap"]
    lines = ["## Each method against its baseline", "",
             f"Paired AbsRel difference (method − baseline; negative = better), mean [{int(100 * b['level'])} % "
             f"interval] from {b['replicates']} bootstrap replicates over seeds and test frames (paired: same "
             "seeds, same frames; scheme: robustdepth/bench/stats.py). ✓ resolved better, ✗ resolved worse.", "",
             "| method | baseline | seeds | " + " | ".join([*CONDITIONS, "adverse mean"]) + " | adverse verdict |",
             "|---|---|---|" + "---:|" * (len(CONDITIONS) + 1) + "---|"]
    for c in result["comparisons"]:
        cells = [_cell(c["effects"].get(k)) for k in (*CONDITIONS, ADVERSE_MEAN)]
        verdict = c["effects"].get(ADVERSE_MEAN, {}).get("verdict", "–")
        lines.append(f"| {c['method']} | {c['baseline']} | {len(c['seed_list'])} | " + " | ".join(cells)
                     + f" | {verdict} |")
    return lines


def reading(result: dict[str, Any]) -> list[str]:
    """The comparisons in words, computed from them: one sentence per comparison."""
    if not result["comparisons"]:
        return []
    lines = ["## Reading the table", ""]
    for c in result["comparisons"]:
        effects = c["effects"]
        adverse = effects.get(ADVERSE_MEAN)
        head = (f"- **{c['measures']}** ({c['method']} vs {c['baseline']}, {c['seeds']} seed(s) × {c['frames']} "
                "frames): ")
        if adverse is not None:
            rel = ""
            base = result["rows"].get(c["baseline"], {}).get("adverse_mean", {}).get("abs_rel")
            if base:
                rel = f" ({100 * adverse['mean'] / base:+.1f} % of the baseline's {base:.4f})"
            head += (f"adverse-mean AbsRel {adverse['mean']:+.4f} [{adverse['low']:+.4f}, {adverse['high']:+.4f}]"
                     f"{rel}, {adverse['verdict']}")
        groups: dict[str, list[str]] = {}
        for cond in CONDITIONS:
            if cond in effects:
                groups.setdefault(effects[cond]["verdict"], []).append(cond)
        parts = [f"{verdict}: {', '.join(conds)}" for verdict, conds in groups.items()]
        lines.append(head + ("; per condition — " + "; ".join(parts) if parts else "") + ".")
    resolved = [c for c in result["comparisons"] if c["effects"].get(ADVERSE_MEAN, {}).get("verdict") == BETTER]
    lines += ["", f"{len(resolved)} of {len(result['comparisons'])} comparisons resolve an adverse-mean improvement"
              + (": " + "; ".join(c["measures"] for c in resolved) if resolved else "") + "."]
    return lines


def _cmd(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give a number of worker processes >= 1")
    protocol = table_protocol(args.protocol, args.quick, device=args.device)
    runs = runs_root_for(protocol, args.runs)
    if args.seeds:
        unknown = sorted(set(args.seeds) - set(protocol.run_seeds))
        if unknown:
            raise ConfigError(f"--seeds {' '.join(map(str, unknown))}: not seeds of the protocol "
                              f"({', '.join(map(str, protocol.run_seeds))})")
    result = run(protocol, Path(args.out), runs, quick=args.quick, corruption_frames=args.corruption_frames,
                 rows=args.rows, seeds=args.seeds, replicates=args.replicates, jobs=args.jobs)
    print(to_markdown(result, output_stem(protocol.version, args.quick)))
    return 0


def add_subparser(commands: Any) -> None:
    p = commands.add_parser("methods", help="every method side by side (table, intervals, forest plot, grid)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="benchmarks/protocol.yaml")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--runs", default=None, help="runs root shared by every table (default runs/bench for protocol "
                   "v1, runs/bench_vN for vN; --quick: …_quick); use the same spelling as the other tables")
    p.add_argument("--quick", action="store_true", help="tiny smoke version (tiny world, a few steps, 2 seeds)")
    p.add_argument("--corruption-frames", type=int, default=CORRUPTION_FRAMES)
    p.add_argument("--rows", nargs="+", metavar="KEY",
                   help="only these rows (registry keys: " + ", ".join(r.key for r in TABLE.values()
                                                                    if r.key != TEACHER)
                   + "); the teacher and each row's chain come along; comparisons need both of their rows")
    p.add_argument("--seeds", nargs="+", type=int, help="only these of the protocol's seeds")
    p.add_argument("--replicates", type=int, default=BOOTSTRAP_REPLICATES, help="bootstrap replicates")
    p.add_argument("--device", default=None, help="train.device and evaluation device (e.g. cuda; default: the "
                   "config's, auto); never required")
    p.add_argument("--jobs", type=int, default=1, help="train this many runs at once, each in its own "
                   "process with cores/jobs threads (2 on a 2-core CPU: one thread per run; 1 on a GPU)")
    p.set_defaults(func=_cmd)
