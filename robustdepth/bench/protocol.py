"""The shared benchmark protocol (``benchmarks/protocol.yaml``) and the machinery every table uses.

One world, one resolution, one seed, one cached day-clear teacher, one student budget, one
evaluation split: so rows of different tables (distillation, RoSAMDepth, SEC-Depth, methods) are
comparable. Everything is cached and resumable — the world, the teacher, each run, each
evaluation — so an interrupted benchmark continues where it stopped.

Layout under ``runs_root`` (default ``runs/bench``)::

    teacher/                 the protocol's teacher run (checkpoints/last.pt)
    <name>/                  one student run per table row (checkpoints/, results_world.json, timing.json)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from robustdepth.config import load_config
from robustdepth.training.checkpoint import load_checkpoint


@dataclass(frozen=True)
class BenchProtocol:
    """benchmarks/protocol.yaml as typed values (see that file for the meaning of each)."""

    world_preset: str
    world_seed: int
    world_root: Path
    height: int
    width: int
    seed: int
    teacher_recipe: str
    teacher_steps: int
    teacher_batch_size: int
    teacher_lr: float
    student_steps: int
    student_batch_size: int
    eval_split: str
    eval_protocol: str
    max_frames: int

    @classmethod
    def load(cls, path: str | Path) -> BenchProtocol:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark protocol not found: {path}")
        d = yaml.safe_load(path.read_text())
        try:
            return cls(
                world_preset=d["world"]["preset"], world_seed=int(d["world"]["seed"]),
                world_root=Path(d["world"]["root"]), height=int(d["resolution"]["height"]),
                width=int(d["resolution"]["width"]), seed=int(d["seed"]),
                teacher_recipe=d["teacher"]["recipe"], teacher_steps=int(d["teacher"]["steps"]),
                teacher_batch_size=int(d["teacher"]["batch_size"]), teacher_lr=float(d["teacher"]["lr"]),
                student_steps=int(d["student"]["steps"]), student_batch_size=int(d["student"]["batch_size"]),
                eval_split=d["eval"]["split"], eval_protocol=d["eval"]["protocol"],
                max_frames=int(d["eval"].get("max_frames", 0)))
        except (KeyError, TypeError) as err:
            raise ValueError(f"benchmark protocol {path} lacks or mistypes {err} "
                             "(see benchmarks/protocol.yaml)") from None

    def scaled(self, factor: float, world_preset: str | None = None) -> BenchProtocol:
        """A smaller copy for smoke runs (``--quick``): fewer steps, optionally a smaller world."""
        from dataclasses import replace

        preset = world_preset or self.world_preset
        return replace(self, teacher_steps=max(2, int(self.teacher_steps * factor)),
                       student_steps=max(2, int(self.student_steps * factor)), world_preset=preset,
                       world_root=self.world_root.parent / preset if world_preset else self.world_root)

    def common_overrides(self) -> list[str]:
        return ["data.dataset=world", f"data.root={self.world_root}", f"data.height={self.height}",
                f"data.width={self.width}", f"train.seed={self.seed}", f"eval.split={self.eval_split}",
                f"eval.protocol={self.eval_protocol}", "train.progress=true"]


def ensure_world(protocol: BenchProtocol) -> Path:
    """Generate the protocol's world once (deterministic; reused when present)."""
    from robustdepth.world import generate

    if not (protocol.world_root / "world.json").is_file():
        generate(protocol.world_preset, seed=protocol.world_seed, out=protocol.world_root)
    return protocol.world_root


def _finished(run_dir: Path, steps: int) -> Path | None:
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file() and load_checkpoint(last)["step"] >= steps:
        return last
    return None


def train_run(recipe: str, run_dir: Path, overrides: list[str], steps: int) -> tuple[Path, float]:
    """Train (or resume, or reuse) one run; returns (last checkpoint, seconds per step of this process's work)."""
    from robustdepth.training.trainer import train

    timing = run_dir / "timing.json"
    done = _finished(run_dir, steps)
    if done is not None and timing.is_file():
        return done, float(json.loads(timing.read_text())["s_per_step"])
    cfg = load_config(recipe, [*overrides, f"optim.max_steps={steps}", f"train.name={run_dir.name}"])
    last = run_dir / "checkpoints" / "last.pt"
    start_step = load_checkpoint(last)["step"] if last.is_file() else 0
    t0 = time.perf_counter()
    train(cfg, run_dir=run_dir, resume=last if last.is_file() else None)
    elapsed = time.perf_counter() - t0
    s_per_step = elapsed / max(1, steps - start_step)
    if start_step == 0 or not timing.is_file():
        timing.write_text(json.dumps({"s_per_step": s_per_step, "steps_timed": steps - start_step,
                                      "recipe": recipe}, indent=2))
    return last, s_per_step


def teacher_checkpoint(protocol: BenchProtocol, runs_root: Path = Path("runs/bench")) -> Path:
    """The protocol's day-clear teacher, trained once and shared by every table."""
    ensure_world(protocol)
    overrides = [*protocol.common_overrides(), f"optim.batch_size={protocol.teacher_batch_size}",
                 f"optim.lr={protocol.teacher_lr}"]
    return train_run(protocol.teacher_recipe, runs_root / "teacher", overrides, protocol.teacher_steps)[0]


def student_overrides(protocol: BenchProtocol, teacher: Path) -> list[str]:
    """Students start from the teacher's weights (as the papers do) and distil from it when a recipe asks."""
    return [*protocol.common_overrides(), f"optim.batch_size={protocol.student_batch_size}",
            f"model.init_checkpoint={teacher}"]


def evaluate_run(protocol: BenchProtocol, checkpoint: Path) -> dict[str, Any]:
    """Per-condition results of a checkpoint on the protocol's split (cached next to the run)."""
    from robustdepth.evaluation import get_protocol, load_results, write_results
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.inference import DepthModel

    path = checkpoint.parent.parent / f"results_{protocol.eval_protocol}.json"
    if path.is_file() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
        return load_results(path)
    model = DepthModel.from_checkpoint(checkpoint)
    eval_protocol = get_protocol(protocol.eval_protocol)
    evaluator = evaluate_model(model, model.config, eval_protocol, split=protocol.eval_split,
                               max_frames=protocol.max_frames)
    write_results(path, evaluator.summary(), eval_protocol,
                  extra={"checkpoint": str(checkpoint), "bench_protocol": _jsonable(asdict(protocol))})
    return load_results(path)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


ADVERSE = ("night", "rain", "fog", "snow")
TABLE_METRICS = ("abs_rel", "sq_rel", "rmse", "a1")


def method_row(summary: dict[str, Any], s_per_step: float | None = None) -> dict[str, Any]:
    """One table row: metrics per condition, the adverse mean, the clear-vs-adverse gap, s/step."""
    row: dict[str, Any] = {c: {m: summary[c][m] for m in TABLE_METRICS} for c in ("clear", *ADVERSE) if c in summary}
    adverse = [c for c in ADVERSE if c in summary]
    if adverse:
        row["adverse_mean"] = {m: sum(summary[c][m] for c in adverse) / len(adverse) for m in TABLE_METRICS}
        if "clear" in summary:
            row["gap_abs_rel"] = row["adverse_mean"]["abs_rel"] - summary["clear"]["abs_rel"]
    if s_per_step is not None:
        row["s_per_step"] = s_per_step
    return row


def rows_to_markdown(rows: dict[str, dict[str, Any]], title: str, note: str = "") -> str:
    """AbsRel / δ1 per condition + adverse mean (+ SqRel, RMSE of the adverse mean), one row per method."""
    conditions = [c for c in ("clear", *ADVERSE) if any(c in r for r in rows.values())]
    head = ["method", *[f"{c} AbsRel" for c in conditions], "adverse AbsRel", "adverse SqRel", "adverse RMSE",
            "adverse δ1", "clear δ1", "gap", "s/step"]
    lines = [f"# {title}", "", note, "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, r in rows.items():
        adv = r.get("adverse_mean", {})
        cells = [f"{r[c]['abs_rel']:.4f}" if c in r else "–" for c in conditions]
        cells += [f"{adv[m]:.4f}" if m in adv else "–" for m in ("abs_rel", "sq_rel", "rmse")]
        cells += [f"{adv['a1']:.3f}" if "a1" in adv else "–", f"{r['clear']['a1']:.3f}" if "clear" in r else "–",
                  f"{r['gap_abs_rel']:+.4f}" if "gap_abs_rel" in r else "–",
                  f"{r['s_per_step']:.3f}" if "s_per_step" in r else "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
