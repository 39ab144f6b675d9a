"""The one runs layer: train, resume or reuse a stage (one run folder), and resolve a student's chain.

``robustdepth pipeline`` (:mod:`robustdepth.training.pipeline`), every benchmark table
(:mod:`robustdepth.bench.protocol`) and ``robustdepth demo`` go through :func:`ensure_run`, and wire a
student to its teacher chain with :func:`resolve_chain` — so "is this folder's run the one asked for",
"what counts as finished", "what timing.json holds" and "which model is Φ_day" are written once.

Contracts of :func:`ensure_run`:

* a folder whose newest checkpoint (``last.pt``, else its newest intact step file) reached the asked step
  count is **reused** (nothing trains); an interrupted one **resumes** bit-exactly (the trainer's resume);
  an empty folder **trains**;
* a folder holding a run of another configuration is refused with :class:`RunMismatchError` naming every
  differing key with both values. Run mechanics (``train.*``, ``eval.*``, ``data.num_workers``) do not make
  another experiment, except the keys a caller names in ``experiment_keys`` (a benchmark row's seed);
  asking for more ``optim.max_steps`` extends the stored run rather than differing from it;
* ``timing.json`` records the wall and main-process CPU seconds per step of the training this call did,
  the action and the load average (the machine may be shared); a reused run keeps its stored timing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robustdepth.checkpoint import load_checkpoint, resolve_checkpoint
from robustdepth.config import ConfigError, to_dict

log = logging.getLogger(__name__)

# Keys whose difference does not make a stored run a different experiment (mechanics, not maths).
IGNORED_PREFIXES = ("train.", "eval.", "data.num_workers")
TIMING_FILE = "timing.json"


class RunMismatchError(ConfigError):
    """A run folder holds a run made with another configuration than the one asked for."""


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`ensure_run` did: the run's final checkpoint, ``trained`` / ``resumed`` / ``reused``, and
    the seconds per step of the training this call did (a reused run: its stored value; None if never timed)."""

    checkpoint: Path
    action: str
    s_per_step: float | None
    timing: dict[str, Any] = field(default_factory=dict)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint to reuse or resume: ``last.pt``, else its newest intact step file; None if none."""
    if not (Path(run_dir) / "checkpoints").is_dir():
        return None
    path = resolve_checkpoint(run_dir)
    return path if path.is_file() else None


def finished_checkpoint(run_dir: Path) -> Path | None:
    """``run_dir``'s last.pt when its run reached its own step count, else None."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if last.is_file():
        ckpt = load_checkpoint(last)
        if int(ckpt["step"]) >= int(ckpt["total_steps"]):
            return last
    return None


def read_timing(run_dir: Path) -> dict[str, Any]:
    """timing.json of a run ({} when it was never timed)."""
    path = Path(run_dir) / TIMING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _extends(stored_steps: Any, asked_steps: Any) -> bool:
    return bool(stored_steps) and bool(asked_steps) and int(asked_steps) > int(stored_steps)


def config_differences(stored: dict[str, Any], cfg: DictConfig, experiment_keys: tuple[str, ...] = ()) -> list[str]:
    """Keys whose values differ between a stored run's config and ``cfg``: ``experiment_keys`` that differ
    first, then every other key outside the run mechanics (:data:`IGNORED_PREFIXES`).

    Only keys both configs know are compared: the schema grows as methods are added, and a key the stored
    run did not have yet (a new component's defaults) does not make it another experiment. Asking for more
    ``optim.max_steps`` than the stored run had is not a difference: it extends the same experiment (the
    schedule is per epoch, so the first N steps are the same either way).
    """
    old, new = dict(_flatten(stored)), dict(_flatten(to_dict(cfg)))
    keys = sorted(set(old) & set(new))
    forced = [k for k in experiment_keys if k in old and k in new and old[k] != new[k]]
    return forced + [k for k in keys if not k.startswith(IGNORED_PREFIXES) and old[k] != new[k]
                     and not (k == "optim.max_steps" and _extends(old[k], new[k]))]


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def check_stored_run(run_dir: Path, cfg: DictConfig, name: str, experiment_keys: tuple[str, ...] = (),
                     hint: str = "delete it to retrain, or choose another run folder") -> dict[str, Any] | None:
    """Refuse ``run_dir`` when it holds a run of another configuration (:class:`RunMismatchError` naming the
    folder and each differing key with both values); returns the stored checkpoint (None for an empty folder)."""
    last = last_checkpoint(run_dir)
    if last is None:
        return None
    ckpt = load_checkpoint(last)
    differ = config_differences(ckpt["config"], cfg, experiment_keys)
    if differ:
        asked = to_dict(cfg)
        shown = "; ".join(f"{k} (stored {_lookup(ckpt['config'], k)!r}, asked {_lookup(asked, k)!r})"
                          for k in differ[:10])
        more = f" and {len(differ) - 10} more" if len(differ) > 10 else ""
        raise RunMismatchError(f"{name}: {run_dir} holds a run made with another configuration — differing "
                               f"keys: {shown}{more}. {hint[:1].upper()}{hint[1:]}")
    return ckpt


def ensure_run(cfg: DictConfig, run_dir: str | Path, name: str, *, experiment_keys: tuple[str, ...] = (),
               hint: str = "delete it to retrain, or choose another run folder",
               recipe: str | None = None) -> RunOutcome:
    """Train ``cfg`` in ``run_dir``, or reuse / resume what is there (module docstring); ``name`` labels logs
    and errors, ``recipe`` is recorded in timing.json."""
    from robustdepth.training.trainer import train

    run_dir = Path(run_dir)
    stored = check_stored_run(run_dir, cfg, name, experiment_keys, hint)
    target = int(cfg.optim.max_steps or (stored or {}).get("total_steps") or 0)
    if stored is not None and int(stored["step"]) >= target:
        log.info("%s: reusing finished run %s", name, run_dir)
        timing = read_timing(run_dir)
        s_per_step = timing.get("s_per_step", timing.get("wall_s_per_step"))
        return RunOutcome(last_checkpoint(run_dir), "reused", None if s_per_step is None else float(s_per_step),
                          timing)
    resume = last_checkpoint(run_dir) if stored is not None else None
    start = int(stored["step"]) if stored is not None else 0
    action = "resumed" if resume is not None else "trained"
    log.info("%s: %s in %s%s", name, "resuming" if resume else "training", run_dir,
             f" at step {start}" if resume else "")
    wall, cpu = time.perf_counter(), time.process_time()
    out = train(cfg, run_dir=run_dir, resume=resume)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out is None:  # a data-parallel worker: the main process owns the folder's files
        return RunOutcome(run_dir / "checkpoints" / "last.pt", action, None)
    checkpoint = Path(out)
    done = max(1, (target or int(load_checkpoint(checkpoint)["step"])) - start)
    timing = {"s_per_step": wall / done, "cpu_s_per_step": cpu / done, "steps": done, "action": action,
              **({"recipe": recipe} if recipe else {}),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    (run_dir / TIMING_FILE).write_text(json.dumps(timing, indent=1))
    return RunOutcome(checkpoint, action, wall / done, timing)


def ensure_recipe_run(recipe: str, run_dir: str | Path, overrides: list[str], steps: int) -> RunOutcome:
    """:func:`ensure_run` of ``recipe`` + ``overrides`` for ``steps`` steps in ``run_dir`` (named after the
    folder): one free-standing run outside the benchmark registry (``make demo``, the real-video benchmark)."""
    from robustdepth.configure import load_config

    cfg = load_config(recipe, [*overrides, f"optim.max_steps={steps}", f"train.name={Path(run_dir).name}"])
    return ensure_run(cfg, run_dir, f"run {Path(run_dir).name!r}", recipe=recipe)


# ---------------------------------------------------------------------------------------------- the chain rules


def root_of(checkpoint: Path) -> Path:
    """The first model of a checkpoint's teacher chain (itself when it had no teacher)."""
    stored = load_checkpoint(checkpoint)["config"]
    teacher = stored.get("providers", {}).get("teacher", {})
    if teacher.get("enabled") and teacher.get("checkpoint"):
        return root_of(Path(teacher["checkpoint"]))
    return checkpoint


def set_key(cfg: DictConfig, key: str, value: Any) -> None:
    """``cfg[key] = value`` for a dotted key (replacing, not merging, a node)."""
    OmegaConf.update(cfg, key, value, merge=False)


def resolve_chain(cfg: DictConfig, name: str, *, teacher: Path | None, histogram: Callable[[Path], Path],
                  root: Path | None = None, day: Path | None = None) -> None:
    """Wire the student ``cfg`` (in place) to its chain, the same way for the pipeline, the benchmarks and
    the demo:

    * ``providers.teacher.checkpoint`` = ``teacher`` — given exactly when the recipe distils a teacher;
    * the student starts from the teacher's weights (``model.init_checkpoint``) when the recipe's teacher
      says ``init_student`` and nothing else was set;
    * Φ_day (``providers.day_model``, when enabled and not set): ``day`` when given, else the teacher
      (``stage: teacher``) or the chain's root, the first, self-supervised model (``stage: root``; ``root``,
      else found from the teacher's checkpoint);
    * Syn2Real's day-histogram prior (KL term on, no ``prior_path``): ``histogram(Φ_day)`` — the caller
      decides where it is cached — where Φ_day is the day model, or the chain's root without one.
    """
    t = cfg.providers.teacher
    if t.enabled and teacher is None:
        raise ConfigError(f"{name}: the recipe distils a frozen teacher (providers.teacher); give its checkpoint")
    if not t.enabled and teacher is not None:
        raise ConfigError(f"{name}: the recipe has no teacher provider, but a teacher ({teacher}) was given")
    if teacher is not None:
        set_key(cfg, "providers.teacher.checkpoint", str(teacher))
        if t.init_student and not cfg.model.init_checkpoint:
            set_key(cfg, "model.init_checkpoint", str(teacher))
    d = cfg.providers.day_model
    if not d.enabled and day is not None:
        raise ConfigError(f"{name}: the recipe has no day_model provider, but Φ_day ({day}) was given")

    def chain_root() -> Path:
        if root is not None:
            return Path(root)
        if teacher is None:
            raise ConfigError(f"{name}: Φ_day (providers.day_model / Syn2Real's prior) needs a teacher chain or "
                              "providers.day_model.checkpoint")
        return root_of(Path(str(teacher)))

    if d.enabled and not d.checkpoint:
        chosen = day if day is not None else (teacher if d.stage == "teacher" and teacher is not None
                                              else chain_root())
        set_key(cfg, "providers.day_model.checkpoint", str(chosen))
    kl = cfg.losses.syn2real_kl
    if float(kl.weight) != 0.0 and not kl.prior_path:
        source = Path(str(d.checkpoint)) if d.enabled and d.checkpoint else chain_root()
        set_key(cfg, "losses.syn2real_kl.prior_path", str(histogram(source)))


def queue_schedule(steps: int) -> tuple[int, int]:
    """(warm-up, T_u) of the latency queue scaled to a short budget: 10 % of the steps each (the recipe
    defaults, one epoch and 1000 steps, are for ~100k-step runs); the benchmarks' rule for short students."""
    return max(1, steps // 10), max(1, steps // 10)


__all__ = ["IGNORED_PREFIXES", "RunMismatchError", "RunOutcome", "check_stored_run", "config_differences",
           "ensure_recipe_run", "ensure_run", "finished_checkpoint", "last_checkpoint", "queue_schedule", "read_timing",
           "resolve_chain", "root_of", "set_key"]
