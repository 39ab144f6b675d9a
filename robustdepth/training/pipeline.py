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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robustdepth.config import ConfigError, config_from_dict, load_config, to_dict
from robustdepth.training.checkpoint import load_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)


# Keys whose difference does not make a stored run a different experiment (mechanics, not maths).
_IGNORED_PREFIXES = ("train.", "eval.", "data.num_workers")


@dataclass
class PipelineResult:
    """The final checkpoint and what happened to each stage (name, folder, trained/resumed/reused)."""

    checkpoint: Path
    root_checkpoint: Path
    stages: list[dict[str, str]] = field(default_factory=list)


def last_checkpoint(stage_dir: Path) -> Path | None:
    """The stage's checkpoint to reuse or resume: ``last.pt``, else its newest intact step file."""
    if not (stage_dir / "checkpoints").is_dir():
        return None
    path = resolve_checkpoint(stage_dir)
    return path if path.is_file() else None


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def config_differences(stored: dict[str, Any], cfg: DictConfig) -> list[str]:
    """Keys (outside run mechanics) whose values differ between a stored run's config and ``cfg``.

    Asking for more ``optim.max_steps`` than the stored run had is not a difference: it extends the same
    experiment (the schedule is per epoch, so the first N steps are the same either way).
    """
    old, new = dict(_flatten(stored)), dict(_flatten(to_dict(cfg)))
    # Only keys both know: the schema grows as methods are added, and a key the stored run did not have yet
    # (a new provider's defaults) does not make it another experiment.
    keys = sorted(set(old) & set(new))
    return [k for k in keys if not k.startswith(_IGNORED_PREFIXES) and old[k] != new[k]
            and not (k == "optim.max_steps" and _extends(old[k], new[k]))]


def _extends(stored_steps: Any, asked_steps: Any) -> bool:
    return bool(stored_steps) and bool(asked_steps) and int(asked_steps) > int(stored_steps)


def _target_steps(ckpt: dict[str, Any], cfg: DictConfig) -> int:
    """Steps the run must reach: the asked ``optim.max_steps`` when set, else the stored run's total."""
    return int(cfg.optim.max_steps or ckpt["total_steps"])


def run_stage(cfg: DictConfig, stage_dir: Path, name: str) -> tuple[Path, str]:
    """Train ``cfg`` in ``stage_dir``, or reuse / resume what is there. Returns (last.pt, action)."""
    from robustdepth.training.trainer import train

    last = last_checkpoint(stage_dir)
    if last is not None:
        ckpt = load_checkpoint(last)
        differ = config_differences(ckpt["config"], cfg)
        if differ:
            raise ConfigError(f"{name} stage folder {stage_dir} holds a run with another configuration "
                              f"(differs in {', '.join(differ[:8])}{' …' if len(differ) > 8 else ''}); "
                              "delete it or choose another --run-dir")
        if int(ckpt["step"]) >= _target_steps(ckpt, cfg):
            log.info("%s stage: reusing finished run %s", name, last)
            return last, "reused"
        log.info("%s stage: resuming %s at step %s", name, last, ckpt["step"])
        out = train(cfg, run_dir=stage_dir, resume=last)
        return Path(out or last), "resumed"
    log.info("%s stage: training in %s", name, stage_dir)
    out = train(cfg, run_dir=stage_dir)
    if out is None:
        raise RuntimeError(f"{name} stage in {stage_dir} returned no checkpoint (not the main process?)")
    return Path(out), "trained"


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
    from robustdepth.config import apply_overrides

    return apply_overrides(config_from_dict(to_dict(cfg)), overrides)


def root_of(checkpoint: Path) -> Path:
    """The first model of a checkpoint's teacher chain (itself when it had no teacher)."""
    stored = load_checkpoint(checkpoint)["config"]
    teacher = stored.get("providers", {}).get("teacher", {})
    if teacher.get("enabled") and teacher.get("checkpoint"):
        return root_of(Path(teacher["checkpoint"]))
    return checkpoint


def _set(cfg: DictConfig, key: str, value: Any) -> None:
    OmegaConf.update(cfg, key, value, merge=False)


def student_config(cfg: DictConfig, teacher: Path, root: Path, run_dir: Path) -> DictConfig:
    """The recipe's config with its teacher, initialisation, Φ_day and histogram prior resolved."""
    cfg = config_from_dict(to_dict(cfg))
    _set(cfg, "providers.teacher.checkpoint", str(teacher))
    if cfg.providers.teacher.init_student and not cfg.model.init_checkpoint:
        _set(cfg, "model.init_checkpoint", str(teacher))
    day = cfg.providers.day_model
    if day.enabled and not day.checkpoint:
        _set(cfg, "providers.day_model.checkpoint", str(teacher if day.stage == "teacher" else root))
    kl = cfg.losses.syn2real_kl
    if float(kl.weight) != 0.0 and not kl.prior_path:
        from robustdepth.priors.histogram import compute_day_histogram

        source = Path(cfg.providers.day_model.checkpoint) if day.enabled and day.checkpoint else root
        path = run_dir / "day_histogram.json"
        if not path.is_file():
            compute_day_histogram(source, path)
        _set(cfg, "losses.syn2real_kl.prior_path", str(path))
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


__all__ = ["PipelineResult", "config_differences", "last_checkpoint", "root_of", "run_pipeline", "run_stage",
           "student_config", "teacher_stage_config"]
