"""Teacher → student robust training on the all-weather world: MD2 vs md4all-DD, Syn2Real-RA, ACDepth (+ ablations).

Under benchmarks/protocol.yaml (the protocol every method table shares): train the day-clear Monodepth2
teacher once (cached in runs/bench/teacher, reused by the other tables), then each student from the teacher's
weights through the pipeline (resumable; finished runs and their evaluations are reused), evaluate every
model per condition on the world's test split, and write docs/results/distillation.{json,md}.

    .venv/bin/python benchmarks/distillation.py            # full protocol (≈ 1 h 10 min on 2 quiet cores)
    .venv/bin/python benchmarks/distillation.py --quick    # smoke version: tiny world, a few steps, in runs/

Rows: MD2 (the teacher itself), md4all-DD, Syn2Real-RA (Φ_syn = the md4all-DD student, Φ_day = the teacher),
ACDepth's ablations L_d / +OGD / +L_c and full ACDepth. Seconds per training step are measured per recipe
(wall and process CPU time; the machine's load average is recorded with them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from robustdepth.config import load_config  # noqa: E402
from robustdepth.evaluation.report import ADVERSE_CONDITIONS, adverse_mean  # noqa: E402
from robustdepth.training.pipeline import last_checkpoint, run_pipeline, run_stage  # noqa: E402

CONDITIONS = ("clear", *ADVERSE_CONDITIONS)
METRICS = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "a1": "δ1"}
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "a1": False}
# (row label, recipe, extra overrides builder). Syn2Real's Φ_syn is the md4all-DD student, so it runs after it.
STUDENTS = ("md4all_dd", "syn2real_ra", "acdepth_ld", "acdepth_ogd", "acdepth_lc", "acdepth")
LABELS = {"teacher": "MD2 (teacher)", "md4all_dd": "md4all-DD", "syn2real_ra": "Syn2Real-RA",
          "acdepth_ld": "ACDepth: L_d", "acdepth_ogd": "ACDepth: L_d + OGD", "acdepth_lc": "ACDepth: L_d + L_c",
          "acdepth": "ACDepth (full)"}
QUICK = {"world": {"preset": "tiny", "seed": 0, "root": "data/world/tiny"},
         "teacher": {"steps": 30}, "student": {"steps": 12}}


def read_protocol(path: Path, quick: bool) -> dict[str, Any]:
    protocol = yaml.safe_load(path.read_text())
    if quick:
        for section, values in QUICK.items():
            protocol[section] = {**protocol.get(section, {}), **values}
    return protocol


def ensure_world(protocol: dict[str, Any]) -> Path:
    """The protocol's world, generated once (2 processes) when missing."""
    from robustdepth.world import generate

    world = protocol["world"]
    root = REPO / world["root"]
    if not (root / "world.json").is_file() or not (root / "test").is_dir():
        print(f"generating world {world['preset']} seed {world['seed']} into {root}", flush=True)
        generate(world["preset"], int(world["seed"]), root, workers=2)
    return root


def common_overrides(protocol: dict[str, Any], root: Path) -> list[str]:
    res = protocol["resolution"]
    return ["data.dataset=world", f"data.root={root}", f"data.height={res['height']}", f"data.width={res['width']}",
            f"train.seed={protocol['seed']}", "data.num_workers=1", "train.progress=false", "train.log_every=50",
            "train.image_every=1000000", "train.ckpt_every=250"]


def timed(label: str, run_dir: Path, fn: Any) -> tuple[Path, dict[str, float]]:
    """Run ``fn()`` (a training stage) and record seconds per step when it actually trained."""
    timing_file = run_dir / "timing.json"
    before = _step_of(run_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    checkpoint, action = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = _step_of(run_dir) - before
    if steps > 0:
        timing = {"steps": steps, "wall_s_per_step": wall / steps, "cpu_s_per_step": cpu / steps,
                  "load_average": list(os.getloadavg()), "action": action}
        timing_file.write_text(json.dumps(timing, indent=1))
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    print(f"{label}: {action} {checkpoint} {timing}", flush=True)
    return checkpoint, timing


def _step_of(run_dir: Path) -> int:
    from robustdepth.training.pipeline import load_checkpoint

    last = last_checkpoint(run_dir if (run_dir / "checkpoints").is_dir() else run_dir / "student")
    return int(load_checkpoint(last)["step"]) if last else 0


def train_teacher(protocol: dict[str, Any], common: list[str], out: Path) -> tuple[Path, dict[str, float]]:
    t = protocol["teacher"]
    cfg = load_config(t["recipe"], [*common, f"optim.max_steps={t['steps']}", f"optim.batch_size={t['batch_size']}",
                                    f"optim.lr={t['lr']}", "train.name=bench_teacher"])
    return timed("teacher", out / "teacher", lambda: run_stage(cfg, out / "teacher", "teacher"))


def train_student(recipe: str, protocol: dict[str, Any], common: list[str], out: Path,
                  checkpoints: dict[str, Path]) -> tuple[Path, dict[str, float]]:
    s = protocol["student"]
    overrides = [*common, f"optim.max_steps={s['steps']}", f"optim.batch_size={s['batch_size']}",
                 f"train.name=bench_{recipe}"]
    if recipe == "syn2real_ra":  # Φ_syn = the md4all-DD student, Φ_day = the day-clear teacher
        overrides += [f"providers.teacher.checkpoint={checkpoints['md4all_dd']}",
                      f"providers.day_model.checkpoint={checkpoints['teacher']}"]
    else:
        overrides.append(f"providers.teacher.checkpoint={checkpoints['teacher']}")
    cfg = load_config(recipe, overrides)

    def run() -> tuple[Path, str]:
        result = run_pipeline(cfg, out / recipe)
        return result.checkpoint, result.stages[-1]["action"]
    return timed(recipe, out / recipe / "student", run)


def evaluate(checkpoint: Path, root: Path, protocol: dict[str, Any]) -> dict[str, Any]:
    """Per-condition summary on the test split (cached next to the checkpoint, keyed by its mtime)."""
    from robustdepth.config import apply_overrides
    from robustdepth.evaluation import get_protocol
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.inference import DepthModel

    cache = checkpoint.parent.parent / "bench_eval.json"
    stamp = checkpoint.stat().st_mtime
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("checkpoint_mtime") == stamp:
            return cached["summary"]
    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    cfg = apply_overrides(model.config, [f"data.root={root}", "data.dataset=world", "data.num_workers=1",
                                         "data.eval_conditions=[]", "data.load_depth_gt=false"])
    ev = protocol["eval"]
    evaluator = evaluate_model(model, cfg, get_protocol(ev["protocol"]), split=ev["split"],
                               max_frames=int(ev.get("max_frames", 0)), progress=False)
    summary = evaluator.summary()
    cache.write_text(json.dumps({"checkpoint_mtime": stamp, "summary": summary}, default=float))
    return summary


def row(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {c: {m: float(summary[c][m]) for m in METRICS} for c in CONDITIONS if c in summary}
    out["adverse mean"] = {m: v for m, v in adverse_mean(summary).items() if m in METRICS}
    return out


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
            values = [cells.get(c, {}).get(metric, float("nan")) for c in (*CONDITIONS, "adverse mean")]
            lines.append(f"| {LABELS[key]} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
        lines.append("")
    lines += ["## Training speed", "",
              "| recipe | steps timed | wall s/step | CPU s/step | load average (1/5/15 min) |",
              "|---|---:|---:|---:|---|"]
    for key, t in timing.items():
        if t:
            load = " / ".join(f"{x:.1f}" for x in t["load_average"])
            lines.append(f"| {LABELS[key]} | {t['steps']} | {t['wall_s_per_step']:.3f} | {t['cpu_s_per_step']:.3f} "
                         f"| {load} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--quick", action="store_true", help="tiny world, a few steps (smoke test); writes to runs/")
    parser.add_argument("--out", help="run folder (default runs/bench, --quick: runs/bench_quick)")
    parser.add_argument("--results", help="results path stem (default docs/results/distillation; --quick: run folder)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    protocol = read_protocol(Path(args.protocol), args.quick)
    out = Path(args.out or REPO / ("runs/bench_quick" if args.quick else "runs/bench"))
    stem = Path(args.results or (out / "distillation" if args.quick else REPO / "docs/results/distillation"))
    root = ensure_world(protocol)
    common = common_overrides(protocol, root)

    checkpoints: dict[str, Path] = {}
    timing: dict[str, dict[str, float]] = {}
    checkpoints["teacher"], timing["teacher"] = train_teacher(protocol, common, out)
    for recipe in STUDENTS:
        checkpoints[recipe], timing[recipe] = train_student(recipe, protocol, common, out, checkpoints)
    rows = {key: row(evaluate(path, root, protocol)) for key, path in checkpoints.items()}

    res = protocol["resolution"]
    results = {
        "quick": args.quick, "rows": rows, "timing": timing, "protocol": protocol,
        "checkpoints": {k: str(v) for k, v in checkpoints.items()},
        "protocol_summary": (f"world {protocol['world']['preset']} (seed {protocol['world']['seed']}), "
                             f"{res['height']}×{res['width']}, teacher {protocol['teacher']['steps']} steps, students "
                             f"{protocol['student']['steps']} steps, batch {protocol['student']['batch_size']}, "
                             f"{protocol['eval']['split']} split, {protocol['eval']['protocol']} protocol "
                             "(median scaling)"),
    }
    command = "python benchmarks/distillation.py" + (" --quick" if args.quick else "")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(results, command))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
