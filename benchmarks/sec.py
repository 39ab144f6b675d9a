"""SEC-Depth on the world under benchmarks/protocol.yaml: MD2 vs MD2+SEC, each distillation recipe with and
without the ``sec`` overlay, an ablation over S ∈ {1, 5, 10}, and the training-time overhead.

    .venv/bin/python benchmarks/sec.py            # the full protocol → docs/results/sec.{json,md}
    .venv/bin/python benchmarks/sec.py --quick    # tiny smoke version → docs/results/sec_quick.{json,md}

Rows (every student starts from the same cached day-clear teacher, same seed, same step budget):

* ``md2``            Monodepth2 continued on clean frames (the baseline).
* ``md2_deg_s5``     Monodepth2 fed degraded inputs every 5 steps, no SECL (what the degradations alone give).
* ``md2+sec``        recipes/sec_monodepth2.yaml (S = 5): the same inputs + SECL and the latency queue.
* ``md2+sec_s1`` / ``md2+sec_s10``: the S ablation (S = 5 is the ``md2+sec`` row).
* ``R`` / ``R+sec``  for each distillation recipe R in DISTILLATION_RECIPES that exists in recipes/ (skipped
  with a note otherwise; rerun the script when it appears — finished rows are reused).

The teacher is reused from where benchmarks/distillation.py trains it (TEACHER_CANDIDATES, or ``--teacher``);
when none exists it is trained here with the protocol's teacher settings into the first candidate, so the
other tables can reuse it. Every run is resumable: a finished run (last.pt at its step count, result.json)
is reused, an interrupted one continues bit-exactly (robustdepth.training.pipeline.run_stage).

The queue schedule is scaled to the short budget (documented in the JSON): warm-up and T_u are 10 % of the
student steps (the recipe defaults, one epoch and 1000 steps, are for ~100k-step runs). The SECL ramp follows
the recipe (w(e) = min(0.1, 0.01·2^(e/2)), integer epochs). s/step is wall time of the training loop divided
by steps; the machine may be shared, so the load average is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robustdepth.config import load_config, to_dict  # noqa: E402
from robustdepth.evaluation import adverse_mean  # noqa: E402
from robustdepth.evaluation.protocols import get_protocol  # noqa: E402
from robustdepth.evaluation.runner import evaluate_model  # noqa: E402
from robustdepth.inference import DepthModel  # noqa: E402
from robustdepth.training.pipeline import load_checkpoint, run_stage, student_config  # noqa: E402

DISTILLATION_RECIPES = ("md4all_dd", "acdepth")
TEACHER_CANDIDATES = ("runs/bench/teacher", "runs/benchmarks/teacher", "runs/distillation/teacher")
METRICS = ("abs_rel", "sq_rel", "rmse", "a1")
QUICK = {"world": {"preset": "tiny", "root": "data/world/tiny"}, "teacher_steps": 40, "teacher_batch_size": 4,
         "student_steps": 10, "student_batch_size": 2}


def load_protocol(path: Path, quick: bool) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"benchmark protocol not found: {path}")
    proto = yaml.safe_load(path.read_text())
    if quick:
        proto["world"].update(QUICK["world"])
        proto["teacher"]["steps"] = QUICK["teacher_steps"]
        proto["student"]["steps"] = QUICK["student_steps"]
        proto["teacher"]["batch_size"] = QUICK["teacher_batch_size"]
        proto["student"]["batch_size"] = QUICK["student_batch_size"]
    return proto


def ensure_world(proto: dict[str, Any]) -> Path:
    from robustdepth.world import generate

    root = REPO / proto["world"]["root"]
    if not (root / "world.json").is_file() or not (root / "test").is_dir():
        generate(proto["world"]["preset"], int(proto["world"]["seed"]), root, progress=False, workers=2)
    return root


def common_overrides(proto: dict[str, Any], world: Path, steps: int, batch: int) -> list[str]:
    res = proto["resolution"]
    return ["data.dataset=world", f"data.root={world}", f"data.height={res['height']}",
            f"data.width={res['width']}", f"train.seed={proto['seed']}", f"optim.max_steps={steps}",
            f"optim.batch_size={batch}", "train.progress=false", "train.device=cpu", "train.log_every=100000",
            "train.image_every=1000000", f"train.ckpt_every={max(50, steps // 4)}", "data.num_workers=0"]


def find_or_train_teacher(proto: dict[str, Any], world: Path, runs: Path, given: str | None,
                          quick: bool) -> Path:
    """The cached teacher (given, or where the distillation benchmark keeps it), else train it here."""
    t = proto["teacher"]
    if given:
        return Path(given)
    # --quick: our own smoke teacher, or the distillation benchmark's finished smoke teacher (any length)
    candidates = [runs / "teacher", REPO / "runs/bench_quick/teacher"] if quick else \
        [REPO / c for c in TEACHER_CANDIDATES]
    for folder in candidates:
        last = folder / "checkpoints" / "last.pt"
        if not last.is_file():
            continue
        ckpt = load_checkpoint(last)
        if int(ckpt["step"]) >= (int(ckpt["total_steps"]) if quick else int(t["steps"])):
            return last
    cfg = load_config(t["recipe"], [*common_overrides(proto, world, int(t["steps"]), int(t["batch_size"])),
                                    f"optim.lr={t['lr']}", "train.name=teacher"])
    last, _ = run_stage(cfg, candidates[0], "teacher")
    return last


def row_specs(proto: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """name → (recipe, extra overrides) of every row whose recipe exists."""
    steps = int(proto["student"]["steps"])
    queue = [f"providers.latency_queue.warmup_steps={max(1, steps // 10)}",
             f"providers.latency_queue.refresh_every={max(1, steps // 10)}"]
    rows: dict[str, tuple[str, list[str]]] = {
        "md2": ("monodepth2", []),
        "md2_deg_s5": ("sec_monodepth2", ["losses.sec.weight=0", "providers.latency_queue.enabled=false"]),
        "md2+sec": ("sec_monodepth2", queue),
        "md2+sec_s1": ("sec_monodepth2", [*queue, "degrade.every_n_steps=1"]),
        "md2+sec_s10": ("sec_monodepth2", [*queue, "degrade.every_n_steps=10"]),
    }
    for recipe in DISTILLATION_RECIPES:
        if (REPO / "recipes" / f"{recipe}.yaml").is_file():
            rows[recipe] = (recipe, [])
            rows[f"{recipe}+sec"] = (f"{recipe}+sec", queue)
    return rows


def train_row(name: str, recipe: str, extra: list[str], proto: dict[str, Any], world: Path, teacher: Path,
              runs: Path) -> tuple[Path, float, int]:
    """Train (or reuse/resume) one row; returns (checkpoint, training wall seconds, steps timed)."""
    steps, batch = int(proto["student"]["steps"]), int(proto["student"]["batch_size"])
    overrides = [*common_overrides(proto, world, steps, batch), f"train.name={name}", *extra]
    cfg = load_config(recipe, overrides)
    if cfg.providers.teacher.enabled:
        cfg = student_config(cfg, teacher, teacher, runs / name)
    else:
        cfg.model.init_checkpoint = str(teacher)
    folder = runs / name
    if (folder / "checkpoints" / "last.pt").is_file():  # interrupted or finished: resume/reuse, time what runs
        before = _step_of(folder)
        start = time.perf_counter()
        last, _ = run_stage(cfg, folder, name)
        return last, time.perf_counter() - start, steps - before
    from robustdepth.training.trainer import Trainer

    trainer = Trainer(cfg, run_dir=folder)
    start = time.perf_counter()  # the training loop only (not dataset indexing / model building)
    try:
        last = trainer.fit()
    finally:
        trainer.close()
    return Path(last), time.perf_counter() - start, steps


def _step_of(folder: Path) -> int:
    last = folder / "checkpoints" / "last.pt"
    return int(load_checkpoint(last)["step"]) if last.is_file() else 0


def evaluate(checkpoint: Path, world: Path, proto: dict[str, Any]) -> dict[str, Any]:
    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    cfg = model.config
    cfg.data.root = str(world)
    cfg.data.num_workers = 0
    evaluator = evaluate_model(model, cfg, get_protocol(proto["eval"]["protocol"]), split=proto["eval"]["split"],
                               max_frames=int(proto["eval"]["max_frames"]), progress=False)
    summary = evaluator.summary()
    conditions = [c for c in summary if c not in ("counts", "scale_ratio")]
    table = {c: {m: float(summary[c][m]) for m in METRICS} for c in conditions}
    table["adverse mean"] = {m: float(v) for m, v in adverse_mean(summary).items() if m in METRICS}
    return {"metrics": table, "counts": dict(summary["counts"])}


def bf16_storage_error(checkpoint: Path, world: Path, proto: dict[str, Any]) -> dict[str, float]:
    """How much storing a network's parameters in bf16 (the queue's storage) moves its sigmoid disparity."""
    from robustdepth.data import build_dataset

    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    cfg = model.config
    cfg.data.root = str(world)
    dataset = build_dataset(cfg, proto["eval"]["split"], train=False)
    images = torch.stack([dataset[i][("color", 0)] for i in range(0, len(dataset), max(1, len(dataset) // 8))])
    net = model.net
    with torch.no_grad():
        ref = net(images).disp[0]
        for p in net.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        rounded = net(images).disp[0]
    diff = (ref - rounded).abs()
    return {"mean_abs": float(diff.mean()), "max_abs": float(diff.max()), "frames": int(images.shape[0])}


def format_markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    conditions = [c for c in next(iter(rows.values()))["metrics"] if c != "adverse mean"]
    lines = [f"# SEC-Depth on the world ({'quick smoke run' if result['quick'] else 'benchmarks/protocol.yaml'})",
             "", f"Command: `{result['command']}`", "",
             f"Teacher: `{result['teacher']}`; students: {result['student_steps']} steps, batch "
             f"{result['batch_size']}, seed {result['seed']}; queue warm-up / T_u: {result['queue_schedule']}.",
             "", "## AbsRel per condition (lower is better)", "",
             "| row | " + " | ".join(conditions) + " | adverse mean | δ1 adverse | s/step | overhead vs base |",
             "|---|" + "---:|" * (len(conditions) + 4)]
    for name, row in rows.items():
        m = row["metrics"]
        cells = " | ".join(f"{m[c]['abs_rel']:.4f}" for c in conditions)
        overhead = row.get("overhead_vs_base")
        lines.append(f"| {name} | {cells} | {m['adverse mean']['abs_rel']:.4f} | {m['adverse mean']['a1']:.4f} | "
                     f"{row['s_per_step']:.3f} | {'' if overhead is None else f'{overhead:+.1%}'} |")
    lines += ["", "## Comparisons (adverse-mean AbsRel)", ""]
    for line in result["comparisons"]:
        lines.append(f"- {line}")
    if result.get("rows_not_run"):
        lines += ["", "Rows not trained yet (rerun without --only): " + ", ".join(result["rows_not_run"]) + "."]
    if result.get("missing_recipes"):
        lines += ["", f"Not run (recipe absent when this ran): {', '.join(result['missing_recipes'])}."]
    err = result.get("bf16_storage_error")
    if err:
        lines += ["", "bf16 queue storage: rounding the parameters of `md2+sec` to bf16 moves its sigmoid disparity "
                      f"by {err['mean_abs']:.2e} on average (max {err['max_abs']:.2e}) over {err['frames']} "
                      "test frames."]
    if result.get("secl_overhead_vs_md2_deg_s5") is not None:
        lines += ["", f"SECL + queue alone (md2+sec vs md2_deg_s5, same inputs): "
                      f"{result['secl_overhead_vs_md2_deg_s5']:+.1%} s/step."]
    lines += ["", f"Load average during the run: {result['load_average']} (2 shared cores: s/step is indicative)."]
    return "\n".join(lines) + "\n"


def comparisons(rows: dict[str, Any]) -> list[str]:
    def adv(name: str) -> float:
        return rows[name]["metrics"]["adverse mean"]["abs_rel"]

    pairs = [("md2", "md2+sec"), ("md2_deg_s5", "md2+sec")]
    pairs += [(r, f"{r}+sec") for r in DISTILLATION_RECIPES if r in rows and f"{r}+sec" in rows]
    out = []
    for base, other in pairs:
        if base in rows and other in rows:
            verdict = "better" if adv(other) < adv(base) else "not better"
            out.append(f"{other} vs {base}: {adv(other):.4f} vs {adv(base):.4f} ({verdict})")
    return out


def base_of(name: str) -> str | None:
    if name.endswith("+sec"):
        return name[: -len("+sec")]
    return "md2" if name.startswith("md2+sec") or name == "md2_deg_s5" else None  # overhead of the whole method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, few steps (smoke test of the pipeline)")
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--teacher", default=None, help="teacher checkpoint (default: the cached one, else train)")
    parser.add_argument("--runs", default=None, help="run folder (default runs/bench_sec[_quick])")
    parser.add_argument("--only", nargs="*", default=None,
                        help="rows to train (default all); finished rows are reported either way")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    proto = load_protocol(Path(args.protocol), args.quick)
    runs = Path(args.runs) if args.runs else REPO / "runs" / ("bench_sec_quick" if args.quick else "bench_sec")
    world = ensure_world(proto)
    teacher = find_or_train_teacher(proto, world, runs, args.teacher, args.quick)
    specs = row_specs(proto)
    unknown = [n for n in args.only or [] if n not in specs]
    if unknown:
        raise SystemExit(f"unknown row(s) {unknown}; rows: {sorted(specs)}")
    rows: dict[str, Any] = {}
    for name, (recipe, extra) in specs.items():  # finished rows are always reported; --only limits training
        cached = runs / name / "result.json"
        if cached.is_file():
            rows[name] = json.loads(cached.read_text())
            continue
        if args.only is not None and name not in args.only:
            continue
        print(f"[sec bench] {name}: {recipe} {' '.join(extra)}", flush=True)
        last, seconds, steps = train_row(name, recipe, extra, proto, world, teacher, runs)
        row = {"recipe": recipe, "overrides": extra, "checkpoint": str(last), "train_s": seconds,
               "timed_steps": steps, "s_per_step": seconds / max(1, steps), **evaluate(last, world, proto)}
        cached.write_text(json.dumps(row, indent=2))
        rows[name] = row
        print(f"[sec bench] {name}: adverse AbsRel {row['metrics']['adverse mean']['abs_rel']:.4f}, "
              f"{row['s_per_step']:.3f} s/step", flush=True)
    for name, row in rows.items():
        base = base_of(name)
        if base in rows and rows[base]["s_per_step"] > 0:
            row["overhead_vs_base"] = row["s_per_step"] / rows[base]["s_per_step"] - 1.0
    secl_overhead = None
    if "md2+sec" in rows and "md2_deg_s5" in rows:  # same inputs and degradations: SECL + queue alone
        secl_overhead = rows["md2+sec"]["s_per_step"] / rows["md2_deg_s5"]["s_per_step"] - 1.0
    steps = int(proto["student"]["steps"])
    result = {
        "quick": args.quick, "command": "python benchmarks/sec.py" + (" --quick" if args.quick else ""),
        "protocol": proto, "teacher": str(teacher), "seed": proto["seed"], "student_steps": steps,
        "batch_size": proto["student"]["batch_size"],
        "queue_schedule": f"{max(1, steps // 10)} / {max(1, steps // 10)} steps", "rows": rows,
        "comparisons": comparisons(rows), "secl_overhead_vs_md2_deg_s5": secl_overhead,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows_not_run": [n for n in specs if n not in rows],
        "missing_recipes": [r for r in DISTILLATION_RECIPES if not (REPO / "recipes" / f"{r}.yaml").is_file()],
        "config_md2_sec": to_dict(load_config("sec_monodepth2"))["losses"]["sec"],
    }
    if "md2+sec" in rows:
        result["bf16_storage_error"] = bf16_storage_error(Path(rows["md2+sec"]["checkpoint"]), world, proto)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "sec_quick" if args.quick else "sec"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(format_markdown(result))
    print(format_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
