"""The shared benchmark protocol (``benchmarks/protocol.yaml``) and the ONE run registry every table uses.

One world, one resolution, one seed, one cached day-clear teacher, one student budget, one
evaluation split: so rows of different tables (distillation, RoSAMDepth, SEC-Depth, methods) are
comparable — and a student that two tables both need (same recipe, same teacher chain, same
overrides) is trained once, in one folder, and reused by both. Everything is cached and resumable —
the world, each run, the mask cache, the day histograms, each evaluation — so an interrupted
benchmark continues where it stopped.

Layout under ``runs_root`` (``runs/bench``; ``--quick`` smoke runs: ``runs/bench_quick``)::

    teacher/                    the protocol's teacher (checkpoints/last.pt, timing.json, results_world.json)
    <key>/                      one run per canonical row key of ROWS (same files)
    masks_felzenszwalb/         weight-free object masks of the training frames (RoSAMDepth, ``all``)
    day_histograms/<run>.json   Syn2Real's P^day of a Φ_day run

Paths are stored in each run's config as given (relative to the repository root when the tables run
there), so every table must use the same ``runs_root`` spelling to share runs; a folder holding a run
of another configuration is refused with the differing keys (:class:`RunMismatchError`).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from robustdepth.config import ConfigError, load_config
from robustdepth.training.checkpoint import load_checkpoint

RUNS_ROOT = Path("runs/bench")
QUICK_RUNS_ROOT = Path("runs/bench_quick")
TEACHER = "teacher"


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
    student_lr: float
    eval_split: str
    eval_protocol: str
    max_frames: int
    quick: bool = False  # a smoke-sized copy (quick_protocol): no progress bars, in-process data loading

    @classmethod
    def load(cls, path: str | Path) -> BenchProtocol:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark protocol not found: {path}")
        d = yaml.safe_load(path.read_text())
        if not isinstance(d, dict):
            raise ValueError(f"benchmark protocol {path} is not a YAML mapping (see benchmarks/protocol.yaml)")

        def get(key: str, kind: type, default: Any = None) -> Any:
            node: Any = d
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    if default is not None:
                        return default
                    raise ValueError(f"benchmark protocol {path} lacks the key {key!r} (see benchmarks/protocol.yaml)")
                node = node[part]
            try:
                return kind(node)
            except (TypeError, ValueError):
                raise ValueError(f"benchmark protocol {path}: {key}={node!r} is not a {kind.__name__}") from None

        return cls(
            world_preset=get("world.preset", str), world_seed=get("world.seed", int),
            world_root=get("world.root", Path), height=get("resolution.height", int),
            width=get("resolution.width", int), seed=get("seed", int), teacher_recipe=get("teacher.recipe", str),
            teacher_steps=get("teacher.steps", int), teacher_batch_size=get("teacher.batch_size", int),
            teacher_lr=get("teacher.lr", float), student_steps=get("student.steps", int),
            student_batch_size=get("student.batch_size", int), student_lr=get("student.lr", float),
            eval_split=get("eval.split", str),
            eval_protocol=get("eval.protocol", str), max_frames=get("eval.max_frames", int, default=0))

    def scaled(self, factor: float, world_preset: str | None = None) -> BenchProtocol:
        """A smaller copy for smoke runs (``--quick``): fewer steps, optionally a smaller world."""
        preset = world_preset or self.world_preset
        return replace(self, teacher_steps=max(2, int(self.teacher_steps * factor)),
                       student_steps=max(2, int(self.student_steps * factor)), world_preset=preset,
                       world_root=self.world_root.parent / preset if world_preset else self.world_root)

    def common_overrides(self) -> list[str]:
        return ["data.dataset=world", f"data.root={self.world_root}", f"data.height={self.height}",
                f"data.width={self.width}", f"train.seed={self.seed}", f"eval.split={self.eval_split}",
                f"eval.protocol={self.eval_protocol}", "train.progress=true"]

    def summary(self) -> str:
        """One line for the tables' notes."""
        return (f"world {self.world_preset} (seed {self.world_seed}), {self.height}×{self.width}, teacher "
                f"{self.teacher_steps} steps (batch {self.teacher_batch_size}), students {self.student_steps} steps "
                f"(batch {self.student_batch_size}, lr {self.student_lr:g}), seed {self.seed}, {self.eval_split} "
                f"split, {self.eval_protocol} protocol (median scaling)")


def quick_protocol(protocol: BenchProtocol) -> BenchProtocol:
    """The smoke-sized copy every table's ``--quick`` uses: the tiny world, a few steps, small batches."""
    return replace(protocol.scaled(0.01, world_preset="tiny"), teacher_steps=6, student_steps=3,
                   teacher_batch_size=4, student_batch_size=2, quick=True)


def default_runs_root(protocol: BenchProtocol) -> Path:
    """runs/bench, or runs/bench_quick for a quick protocol (quick runs never mix with full ones)."""
    return QUICK_RUNS_ROOT if protocol.quick else RUNS_ROOT


def table_protocol(path: str | Path, quick: bool) -> BenchProtocol:
    """The protocol a table's command runs: ``path`` loaded, or its smoke-sized copy with ``--quick``."""
    protocol = BenchProtocol.load(path)
    return quick_protocol(protocol) if quick else protocol


def runs_root_for(protocol: BenchProtocol, given: str | Path | None) -> Path:
    """A table's runs root: the one given on the command line, else :func:`default_runs_root`."""
    return Path(given) if given else default_runs_root(protocol)


def ensure_world(protocol: BenchProtocol) -> Path:
    """Generate the protocol's world once (deterministic; reused when present)."""
    from robustdepth.world import generate

    root = protocol.world_root
    if not (root / "world.json").is_file() or not (root / protocol.eval_split).is_dir():
        generate(protocol.world_preset, seed=protocol.world_seed, out=root, progress=not protocol.quick)
    return root


# ------------------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class RowSpec:
    """A canonical run: its recipe and the rows whose checkpoints it needs (None = not needed).

    ``teacher`` is the frozen model it distils (``providers.teacher.checkpoint``; the recipe must enable
    it); ``init`` the row whose weights it starts from (default: its teacher, else the protocol teacher —
    students start from the teacher's weights, as the papers do); ``day`` is Syn2Real's Φ_day
    (default, as the pipeline: the first model of the teacher's chain).
    """

    recipe: str
    teacher: str | None = TEACHER
    init: str | None = None
    day: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def init_row(self) -> str:
        return self.init or self.teacher or TEACHER


_NO_SECL = ("losses.sec.weight=0", "providers.latency_queue.enabled=false")

#: Every student row of every table, by canonical key (``TEACHER`` is the protocol's teacher, built from it).
ROWS: dict[str, RowSpec] = {
    # benchmarks/distillation.py, `robustdepth bench methods`
    "md4all_dd": RowSpec("md4all_dd"),
    "syn2real_ra": RowSpec("syn2real_ra", teacher="md4all_dd", day=TEACHER),  # Φ_syn = md4all-DD, Φ_day = teacher
    "acdepth_ld": RowSpec("acdepth_ld"),
    "acdepth_ogd": RowSpec("acdepth_ogd"),
    "acdepth_lc": RowSpec("acdepth_lc"),
    "acdepth": RowSpec("acdepth"),
    # the run-to-run noise floor of the tables: md4all-DD again with another seed (data order, jitter, degradations)
    "md4all_dd_seed43": RowSpec("md4all_dd", extra=("train.seed=43",)),
    # benchmarks/rosam.py: RA students of Φ_syn (init from it), W_cst and P^day from Φ_day
    **{name: RowSpec(name, teacher="md4all_dd", day=TEACHER)
       for name in ("rosam_ore", "rosam_src", "rosam_arom", "rosam_arom_rgl", "rosam_arom_rgl_ore", "rosam",
                    "rosam_world_masks")},
    # benchmarks/sec.py: self-supervised continuations of the teacher, and the +sec overlays
    "md2_continued": RowSpec("monodepth2", teacher=None),
    "md2_deg_s5": RowSpec("sec_monodepth2", teacher=None, extra=_NO_SECL),
    "sec_monodepth2": RowSpec("sec_monodepth2", teacher=None),
    "sec_monodepth2_s1": RowSpec("sec_monodepth2", teacher=None, extra=("degrade.every_n_steps=1",)),
    "md2_deg_s1": RowSpec("sec_monodepth2", teacher=None, extra=(*_NO_SECL, "degrade.every_n_steps=1")),
    # S = 1 without the spread trigger (periodic refreshes only): what the trigger, which fires on nearly every
    # SECL step, does to the result
    "sec_monodepth2_s1_periodic": RowSpec(
        "sec_monodepth2", teacher=None,
        extra=("degrade.every_n_steps=1", "providers.latency_queue.forced_refresh=false")),
    "sec_monodepth2_s10": RowSpec("sec_monodepth2", teacher=None, extra=("degrade.every_n_steps=10",)),
    "md4all_dd_sec": RowSpec("md4all_dd+sec"),
    "acdepth_sec": RowSpec("acdepth+sec"),
    "rosam_sec": RowSpec("rosam+sec", teacher="md4all_dd", day=TEACHER),
    # all three seed methods in one student (methods table), and the same without the SEC-Depth overlay
    "all": RowSpec("all"),
    "all_no_sec": RowSpec("all", extra=_NO_SECL),
}

_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class RunMismatchError(ConfigError):
    """A run folder holds a run made with another configuration than the one asked for."""


def row_dir(runs_root: Path, key: str) -> Path:
    """``runs_root/<key>``; keys are lower-case names (no paths), so one key is always one folder."""
    if not _KEY.match(key):
        raise ValueError(f"row key {key!r}: use lower-case letters, digits and underscores")
    return Path(runs_root) / key


def queue_schedule(steps: int) -> tuple[int, int]:
    """(warm-up, T_u) of the latency queue scaled to a short budget: 10 % of the steps each (the recipe
    defaults, one epoch and 1000 steps, are for ~100k-step runs)."""
    return max(1, steps // 10), max(1, steps // 10)


def _mechanics(protocol: BenchProtocol, steps: int) -> list[str]:
    """Run mechanics (ignored when comparing a stored run's config): logging, checkpoints, loaders."""
    return [f"train.progress={str(not protocol.quick).lower()}", "train.log_every=50", "train.image_every=1000000",
            f"train.ckpt_every={max(50, steps // 4)}", f"data.num_workers={0 if protocol.quick else 1}"]


def _set(cfg: DictConfig, key: str, value: Any) -> None:
    OmegaConf.update(cfg, key, value, merge=False)


def felzenszwalb_mask_cache(protocol: BenchProtocol, runs_root: Path = RUNS_ROOT, recipe: str = "rosam",
                            extra: tuple[str, ...] | list[str] = ()) -> Path:
    """Felzenszwalb object masks of the training frames in ``runs_root/masks_felzenszwalb`` (written once,
    resumable; refused by write_mask_cache when ``recipe``'s mask parameters differ from the cached ones)."""
    from robustdepth.priors.masks import write_mask_cache

    ensure_world(protocol)
    cache = Path(runs_root) / "masks_felzenszwalb"
    cfg = load_config(recipe, [*protocol.common_overrides(), *extra, "providers.masks.enabled=true",
                               "providers.masks.method=felzenszwalb"])
    write_mask_cache(cfg, cache, progress=not protocol.quick)
    return cache


def day_histogram(day: Path, runs_root: Path = RUNS_ROOT) -> Path:
    """Syn2Real's P^day of the Φ_day checkpoint ``day`` in ``runs_root/day_histograms/<its run>.json`` (once)."""
    from robustdepth.priors.histogram import compute_day_histogram

    day = Path(day)
    run = day.parent.parent.name if day.parent.name == "checkpoints" else day.stem
    path = Path(runs_root) / "day_histograms" / f"{run}.json"
    if not path.is_file():
        compute_day_histogram(day, path)
    return path


def row_config(protocol: BenchProtocol, key: str, recipe: str, *, teacher: Path | None = None,
               init: Path | None = None, day: Path | None = None, extra: tuple[str, ...] | list[str] = (),
               runs_root: Path = RUNS_ROOT, steps: int | None = None, batch_size: int | None = None) -> DictConfig:
    """The exact config :func:`train_row` trains: protocol + budget (steps, batch, student lr) + recipe +
    ``extra``, its chain resolved.

    The latency queue's warm-up and T_u are scaled to the budget (:func:`queue_schedule`) whenever the
    row's config enables the queue; Syn2Real's KL prior is Φ_day's shared histogram; felzenszwalb mask
    providers read the shared mask cache.
    """
    ensure_world(protocol)
    steps = steps or protocol.student_steps
    # every row fine-tunes at the protocol's student lr; the teacher (and any row) overrides it in ``extra``
    base = [*protocol.common_overrides(), f"optim.batch_size={batch_size or protocol.student_batch_size}",
            f"optim.lr={protocol.student_lr}", f"optim.max_steps={steps}", *_mechanics(protocol, steps),
            f"train.name={key}"]
    if init is not None:
        base.append(f"model.init_checkpoint={init}")
    cfg = load_config(recipe, [*base, *extra])
    if cfg.providers.latency_queue.enabled:
        warmup, refresh = queue_schedule(steps)
        cfg = load_config(recipe, [*base, f"providers.latency_queue.warmup_steps={warmup}",
                                   f"providers.latency_queue.refresh_every={refresh}", *extra])
    _resolve_chain(cfg, key, recipe, teacher, day, runs_root)
    masks = cfg.providers.masks
    if masks.enabled and masks.method == "felzenszwalb" and not masks.cache:
        _set(cfg, "providers.masks.cache", str(felzenszwalb_mask_cache(protocol, runs_root, recipe, extra)))
    return cfg


def _resolve_chain(cfg: DictConfig, key: str, recipe: str, teacher: Path | None, day: Path | None,
                   runs_root: Path) -> None:
    """Teacher, initialisation, Φ_day and P^day of a student, with the pipeline's rules (student_config)."""
    from robustdepth.training.pipeline import root_of

    t = cfg.providers.teacher
    if t.enabled and teacher is None:
        raise ValueError(f"row {key!r}: recipe {recipe!r} distils a frozen teacher (providers.teacher); give teacher=")
    if not t.enabled and teacher is not None:
        raise ValueError(f"row {key!r}: recipe {recipe!r} has no teacher provider, but teacher={teacher} was given")
    if teacher is not None:
        _set(cfg, "providers.teacher.checkpoint", str(teacher))
        if t.init_student and not cfg.model.init_checkpoint:
            _set(cfg, "model.init_checkpoint", str(teacher))
    d = cfg.providers.day_model
    if d.enabled and not d.checkpoint:
        if day is None and teacher is None:
            raise ValueError(f"row {key!r}: recipe {recipe!r} needs Φ_day (providers.day_model); give day=")
        day = day or (teacher if d.stage == "teacher" else root_of(Path(str(teacher))))
        _set(cfg, "providers.day_model.checkpoint", str(day))
    elif day is not None and not d.enabled:
        raise ValueError(f"row {key!r}: recipe {recipe!r} has no day_model provider, but day={day} was given")
    kl = cfg.losses.syn2real_kl
    if float(kl.weight) != 0.0 and not kl.prior_path:
        source = Path(str(cfg.providers.day_model.checkpoint)) if d.enabled else None
        if source is None:
            raise ValueError(f"row {key!r}: the Syn2Real KL term needs Φ_day (providers.day_model) for its prior")
        _set(cfg, "losses.syn2real_kl.prior_path", str(day_histogram(source, runs_root)))


def check_stored_run(run_dir: Path, cfg: DictConfig, key: str) -> None:
    """Refuse a folder whose run was made with another configuration (mechanics — train.*, eval.*, loaders —
    aside): the error names the folder and each differing key with both values."""
    from robustdepth.config import to_dict
    from robustdepth.training.pipeline import config_differences, last_checkpoint

    last = last_checkpoint(run_dir)
    if last is None:
        return
    stored = load_checkpoint(last)["config"]
    differ = config_differences(stored, cfg)
    if differ:
        asked = to_dict(cfg)
        shown = "; ".join(f"{k} (stored {_lookup(stored, k)!r}, asked {_lookup(asked, k)!r})" for k in differ[:10])
        more = f" and {len(differ) - 10} more" if len(differ) > 10 else ""
        raise RunMismatchError(f"row {key!r}: {run_dir} holds a run made with another configuration — differing "
                               f"keys: {shown}{more}. Delete {run_dir} to retrain it, or use another runs root")


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def finished_checkpoint(run_dir: Path) -> Path | None:
    """``run_dir``'s last.pt when its run reached its step count, else None."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if last.is_file():
        ckpt = load_checkpoint(last)
        if int(ckpt["step"]) >= int(ckpt["total_steps"]):
            return last
    return None


def read_timing(run_dir: Path) -> dict[str, Any]:
    """timing.json of a run ({} when it was never timed)."""
    path = Path(run_dir) / "timing.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def train_row(protocol: BenchProtocol, key: str, recipe: str, *, teacher: Path | None = None,
              init: Path | None = None, day: Path | None = None, extra: tuple[str, ...] | list[str] = (),
              runs_root: Path = RUNS_ROOT, steps: int | None = None,
              batch_size: int | None = None) -> tuple[Path, float | None]:
    """Train, resume or reuse the run ``runs_root/<key>``; returns (last checkpoint, seconds per step).

    A finished run is reused (no training); an interrupted one continues bit-exactly (pipeline.run_stage);
    a folder holding another configuration raises :class:`RunMismatchError`. timing.json records wall and
    main-process CPU seconds per step of the training this call did (plus the load average: the machine
    is shared); a reused run returns its stored s/step (None when it was never timed).
    """
    from robustdepth.training.pipeline import run_stage

    run_dir = row_dir(runs_root, key)
    cfg = row_config(protocol, key, recipe, teacher=teacher, init=init, day=day, extra=extra, runs_root=runs_root,
                     steps=steps, batch_size=batch_size)
    check_stored_run(run_dir, cfg, key)
    last = run_dir / "checkpoints" / "last.pt"
    start = int(load_checkpoint(last)["step"]) if last.is_file() else 0
    wall, cpu = time.perf_counter(), time.process_time()
    checkpoint, action = run_stage(cfg, run_dir, key)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    timing = read_timing(run_dir)
    if action != "reused":
        done = max(1, int(cfg.optim.max_steps) - start)
        timing = {"s_per_step": wall / done, "cpu_s_per_step": cpu / done, "steps": done, "action": action,
                  "recipe": recipe, "load_average": [round(x, 2) for x in os.getloadavg()]}
        (run_dir / "timing.json").write_text(json.dumps(timing, indent=1))
    s_per_step = timing.get("s_per_step", timing.get("wall_s_per_step"))
    return checkpoint, None if s_per_step is None else float(s_per_step)


def run_row(protocol: BenchProtocol, key: str, runs_root: Path = RUNS_ROOT,
            done: dict[str, tuple[Path, float | None]] | None = None) -> tuple[Path, float | None]:
    """The registered row ``key`` (``TEACHER`` or a key of ROWS), its chain first; (checkpoint, s/step).

    ``done`` memoises rows already resolved in this process (and lets a caller impose a checkpoint, e.g.
    ``{"teacher": (path, None)}``); it is filled as rows are resolved.
    """
    done = {} if done is None else done
    if key in done:
        return done[key]
    if key == TEACHER:
        done[key] = train_row(protocol, TEACHER, protocol.teacher_recipe, extra=[f"optim.lr={protocol.teacher_lr}"],
                              runs_root=runs_root, steps=protocol.teacher_steps,
                              batch_size=protocol.teacher_batch_size)
        return done[key]
    done[key] = train_row(protocol, key, **row_inputs(protocol, key, runs_root, done))
    return done[key]


def row_inputs(protocol: BenchProtocol, key: str, runs_root: Path = RUNS_ROOT,
               done: dict[str, tuple[Path, float | None]] | None = None) -> dict[str, Any]:
    """train_row's / row_config's keyword arguments of the registered row ``key`` (its chain run first)."""
    if key not in ROWS:
        raise ValueError(f"unknown benchmark row {key!r}; rows: {', '.join([TEACHER, *ROWS])}")
    spec = ROWS[key]
    done = {} if done is None else done

    def ckpt(row: str | None) -> Path | None:
        return None if row is None else run_row(protocol, row, runs_root, done)[0]

    return {"recipe": spec.recipe, "teacher": ckpt(spec.teacher), "init": ckpt(spec.init_row),
            "day": ckpt(spec.day), "extra": spec.extra, "runs_root": runs_root}


def teacher_checkpoint(protocol: BenchProtocol, runs_root: Path = RUNS_ROOT) -> Path:
    """The protocol's day-clear teacher (``runs_root/teacher``), trained once and shared by every table."""
    return run_row(protocol, TEACHER, runs_root)[0]


def train_run(recipe: str, run_dir: Path, overrides: list[str], steps: int) -> tuple[Path, float]:
    """Train (or resume, or reuse) one free-standing run outside the registry (``make demo``); returns
    (last checkpoint, seconds per step of this process's work). Table rows use :func:`train_row`."""
    from robustdepth.training.trainer import train

    timing = run_dir / "timing.json"
    done = run_dir / "checkpoints" / "last.pt"
    if done.is_file() and load_checkpoint(done)["step"] >= steps and timing.is_file():
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


def student_overrides(protocol: BenchProtocol, teacher: Path) -> list[str]:
    """Overrides of a free-standing student that starts from (and may distil) ``teacher``; rows use ROWS."""
    return [*protocol.common_overrides(), f"optim.batch_size={protocol.student_batch_size}",
            f"model.init_checkpoint={teacher}"]


# ---------------------------------------------------------------------------------------- evaluation


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
                               max_frames=protocol.max_frames, progress=not protocol.quick)
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


NOISE_ROWS = ("md4all_dd", "md4all_dd_seed43")


def seed_noise(protocol: BenchProtocol, runs_root: Path = RUNS_ROOT) -> dict[str, float] | None:
    """The tables' run-to-run noise: |md4all-DD − md4all-DD seed 43| in AbsRel (adverse mean, clear), read from
    the two finished rows (None when either is not trained: the distillation table trains them)."""
    rows = []
    for key in NOISE_ROWS:
        last = finished_checkpoint(row_dir(runs_root, key))
        if last is None:
            return None
        rows.append(method_row(evaluate_run(protocol, last)))
    return {"adverse_abs_rel": abs(rows[0]["adverse_mean"]["abs_rel"] - rows[1]["adverse_mean"]["abs_rel"]),
            "clear_abs_rel": abs(rows[0]["clear"]["abs_rel"] - rows[1]["clear"]["abs_rel"]),
            "rows": list(NOISE_ROWS)}


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
