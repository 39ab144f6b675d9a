"""The teacher → student pipeline of the distillation family (md4all-DD, Syn2Real, ACDepth, RoSAMDepth).

``run_pipeline(cfg, run_dir)`` trains (or reuses) every stage a recipe needs, then the recipe itself:

* ``RUN_DIR/teacher`` — when ``providers.teacher`` is enabled and ``providers.teacher.checkpoint`` is
  empty: the recipe ``providers.teacher.recipe`` (+ ``steps``, ``overrides``; the student's ``data``
  section when ``share_data``). A teacher recipe that needs a teacher itself (Syn2Real's Φ_syn is an
  md4all-DD student) gets its own teacher in ``RUN_DIR/teacher/teacher``, and so on: stages chain.
* ``RUN_DIR/student`` — the recipe, with ``providers.teacher.checkpoint`` set to the teacher, the
  student initialised from it (``model.init_checkpoint``, as the papers do), ``providers.day_model``
  resolved (``stage: root`` = the first, self-supervised model of the chain), and Syn2Real's
  day histogram computed into ``RUN_DIR/student/day_histogram.json`` when its KL term needs one.

Every stage is resumable: a finished stage (its ``last.pt`` at the configured step count) is reused; an
interrupted one continues with ``--resume`` semantics (bit-exact on CPU); a stage folder holding a run
of a different configuration is refused rather than silently mixed. The trainer is not changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robustdepth.checkpoint import load_checkpoint
from robustdepth.config import to_dict
from robustdepth.configure import config_from_dict, load_config
from robustdepth.training.stages import ensure_run, last_checkpoint, resolve_chain, root_of

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """The final checkpoint and what happened to each stage (name, folder, trained/resumed/reused)."""

    checkpoint: Path
    root_checkpoint: Path
    stages: list[dict[str, str]] = field(default_factory=list)


def run_stage(cfg: DictConfig, stage_dir: Path, name: str) -> tuple[Path, str]:
    """Train ``cfg`` in ``stage_dir``, or reuse / resume what is there (:func:`ensure_run`): (checkpoint, action)."""
    outcome = ensure_run(cfg, stage_dir, f"{name} stage", hint="delete it or choose another --run-dir")
    return outcome.checkpoint, outcome.action


def teacher_stage_config(cfg: DictConfig) -> DictConfig:
    """The teacher's config: its recipe + steps + overrides, sharing the student's data and run mechanics."""
    tcfg = cfg.providers.teacher
    overrides = list(tcfg.overrides)
    if tcfg.steps > 0:
        overrides.append(f"optim.max_steps={int(tcfg.steps)}")
    teacher = load_config(tcfg.recipe, overrides)
    shared: dict[str, Any] = {"train": {k: v for k, v in to_dict(cfg)["train"].items() if k not in ("name", "run_dir")}}
    if tcfg.share_data:
        shared["data"] = to_dict(cfg)["data"]
    merged = OmegaConf.merge(teacher, shared)
    # Command-line teacher overrides win over the shared sections.
    return load_config_like(merged, overrides)


def load_config_like(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with ``overrides`` applied again and validated (a plain dict round trip keeps struct mode)."""
    from robustdepth.configure import apply_overrides

    return apply_overrides(config_from_dict(to_dict(cfg)), overrides)


def student_config(cfg: DictConfig, teacher: Path, root: Path, run_dir: Path) -> DictConfig:
    """The recipe's config with its teacher, initialisation, Φ_day and histogram prior resolved
    (:func:`resolve_chain`); the pipeline caches Syn2Real's day histogram in ``run_dir/day_histogram.json``."""
    cfg = config_from_dict(to_dict(cfg))

    def histogram(day: Path) -> Path:
        from robustdepth.training.day_histogram import compute_day_histogram

        path = run_dir / "day_histogram.json"
        if not path.is_file():
            compute_day_histogram(day, path)
        return path

    resolve_chain(cfg, "student", teacher=teacher, root=root, histogram=histogram)
    return cfg


def run_pipeline(cfg: DictConfig, run_dir: str | Path) -> PipelineResult:
    """Train or reuse the teacher chain, then the student (see module docstring)."""
    run_dir = Path(run_dir)
    return _run_chain(cfg, run_dir / "student", run_dir / "teacher", "student")


def _run_chain(cfg: DictConfig, model_dir: Path, teacher_dir: Path, name: str) -> PipelineResult:
    """``cfg``'s model in ``model_dir``; its teacher (when it needs one not given) in ``teacher_dir``."""
    tcfg = cfg.providers.teacher
    if not tcfg.enabled:  # a self-supervised recipe: the root of the chain
        last, action = run_stage(cfg, model_dir, name)
        return PipelineResult(last, last, [{"stage": name, "dir": str(model_dir), "action": action}])
    stages: list[dict[str, str]] = []
    if tcfg.checkpoint:
        teacher = Path(tcfg.checkpoint)
        if teacher.is_dir():
            teacher = last_checkpoint(teacher) or teacher / "last.pt"
        load_checkpoint(teacher)  # fail now, with the path, when it is not a checkpoint
        stages.append({"stage": f"{name}'s teacher", "dir": str(teacher), "action": "given"})
        root = root_of(teacher)
    else:
        inner = _run_chain(teacher_stage_config(cfg), teacher_dir, teacher_dir / "teacher", f"{name}'s teacher")
        teacher, root = inner.checkpoint, inner.root_checkpoint
        stages += inner.stages
    student = student_config(cfg, teacher, root, model_dir)
    last, action = run_stage(student, model_dir, name)
    stages.append({"stage": name, "dir": str(model_dir), "action": action})
    return PipelineResult(last, root, stages)


__all__ = ["PipelineResult", "run_pipeline", "run_stage", "student_config", "teacher_stage_config"]
