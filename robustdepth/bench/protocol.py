"""The shared benchmark protocol (``benchmarks/protocol.yaml``) and the ONE run registry every table uses.

One world, one resolution, one seed, one cached day-clear teacher, one student budget, one
evaluation split: so rows of different tables (distillation, RoSAMDepth, SEC-Depth, methods) are
comparable — and a student that two tables both need (same recipe, same teacher chain, same
overrides) is trained once, in one folder, and reused by both. Everything is cached and resumable —
the world, each run, the mask cache, the day histograms, each evaluation — so an interrupted
benchmark continues where it stopped.

Layout under ``runs_root`` (``runs/bench`` for protocol version 1, ``runs/bench_v2`` for version 2 — whose
teacher is version 1's ``runs/bench/teacher``, the teacher section being identical; ``--quick`` smoke runs:
``runs/bench_quick``, ``runs/bench_v2_quick``)::

    teacher/                    the protocol's teacher (checkpoints/last.pt, timing.json, results_world.json,
                                results_world_frames.json = every test frame's metrics)
    <key>/                      one run per canonical row key of RUN_REGISTRY (same files), the protocol's seed
    <key>@seed<k>/              the same row trained with seed k (its chain stays the protocol seed's)
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from robustdepth.config import ConfigError
from robustdepth.configure import load_config
from robustdepth.training.stages import (
    ensure_run,
    finished_checkpoint,
    queue_schedule,
    resolve_chain,
    set_key,
)

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
    version: int = 1  # protocol version (``version:`` in the YAML; absent = 1); every table states it
    seeds: tuple[int, ...] = ()  # the main table's training seeds (empty = ``seed`` alone); the chain uses ``seed``
    student_epochs: int = 0  # > 0: the student budget in epochs of the training split (student_steps derived)
    student_decay_every_epochs: float = 0.0  # > 0: students' lr ×student_gamma every this many epochs
    student_gamma: float = 0.1
    # A recipe overlay every student row trains with (v2: ``fast`` = bf16 autocast + channels_last + fused Adam,
    # robustdepth/recipes/fast.yaml); "" = none. The teacher keeps the plain recipe (it is shared with v1).
    student_overlay: str = ""
    device: str | None = None  # train.device / evaluation device (None = the config's default, ``auto``)

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

        student = d.get("student") if isinstance(d.get("student"), dict) else {}
        epochs = get("student.epochs", int) if "epochs" in student else 0
        seeds = d.get("seeds", [])
        if not isinstance(seeds, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
            raise ValueError(f"benchmark protocol {path}: seeds={seeds!r} is not a list of integers")
        return cls(
            version=get("version", int) if "version" in d else 1, seeds=tuple(seeds), student_epochs=epochs,
            student_decay_every_epochs=get("student.decay_every_epochs", float) if "decay_every_epochs" in student
            else 0.0, student_gamma=get("student.gamma", float) if "gamma" in student else 0.1,
            student_overlay=get("student.overlay", str) if "overlay" in student else "",
            world_preset=get("world.preset", str), world_seed=get("world.seed", int),
            world_root=get("world.root", Path), height=get("resolution.height", int),
            width=get("resolution.width", int), seed=get("seed", int), teacher_recipe=get("teacher.recipe", str),
            teacher_steps=get("teacher.steps", int), teacher_batch_size=get("teacher.batch_size", int),
            teacher_lr=get("teacher.lr", float),
            student_steps=0 if epochs and "steps" not in student else get("student.steps", int),
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

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds every main-table row is trained with (``seeds``, else the protocol's ``seed`` alone)."""
        return self.seeds or (self.seed,)

    def summary(self) -> str:
        """One line for the tables' notes."""
        budget = f"{self.student_steps} steps" + (f" = {self.student_epochs} epochs" if self.student_epochs else "")
        decay = (f", lr ×{self.student_gamma:g} every {self.student_decay_every_epochs:g} epochs"
                 if self.student_decay_every_epochs else "")
        seeds = ", ".join(map(str, self.run_seeds))
        overlay = f", +{self.student_overlay} overlay" if self.student_overlay else ""
        return (f"protocol v{self.version}: world {self.world_preset} (seed {self.world_seed}), {self.height}×"
                f"{self.width}, teacher {self.teacher_steps} steps (batch {self.teacher_batch_size}), students "
                f"{budget} (batch {self.student_batch_size}, lr {self.student_lr:g}{decay}{overlay}), seeds {seeds}, "
                f"{self.eval_split} split, {self.eval_protocol} protocol (median scaling)")


DEFAULT_PROTOCOL_FILE = "benchmarks/protocol.yaml"


def protocol_label(path: str | Path, repo: Path) -> str:
    """A protocol file as tables and commands name it: relative to the repository ``repo`` when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(repo.resolve())) if path.is_relative_to(repo.resolve()) else str(path)


def protocol_flag(path: str | Path, repo: Path) -> str:
    """`` --protocol FILE`` for a table's recorded command, or "" for the default protocol file."""
    label = protocol_label(path, repo)
    return "" if label == DEFAULT_PROTOCOL_FILE else f" --protocol {label}"


def quick_protocol(protocol: BenchProtocol) -> BenchProtocol:
    """The smoke-sized copy every table's ``--quick`` uses: the tiny world, a few steps, small batches."""
    return replace(protocol.scaled(0.01, world_preset="tiny"), teacher_steps=6, student_steps=3,
                   teacher_batch_size=4, student_batch_size=2, quick=True, seeds=protocol.run_seeds[:2],
                   student_epochs=0)


def default_runs_root(protocol: BenchProtocol) -> Path:
    """runs/bench, or runs/bench_quick for a quick protocol (quick runs never mix with full ones); a protocol of
    version N > 1 has its own root (runs/bench_vN[_quick]) so the runs of an older version stay valid and reused."""
    root = QUICK_RUNS_ROOT if protocol.quick else RUNS_ROOT
    return root if protocol.version == 1 else root.with_name(root.name.replace("bench", f"bench_v{protocol.version}"))


def teacher_root(protocol: BenchProtocol, runs_root: Path) -> Path:
    """Where the protocol's teacher lives: ``runs_root``, except that the default roots of every version share
    version 1's teacher folder (every version keeps the teacher section identical, so one cached teacher serves
    them all; check_stored_run still refuses it if a version ever changed it)."""
    if protocol.version > 1 and Path(runs_root) == default_runs_root(protocol):
        return default_runs_root(replace(protocol, version=1))
    return Path(runs_root)


def student_budget(protocol: BenchProtocol) -> int:
    """Student steps: ``student_steps``, or ``student_epochs`` epochs of the training split as a monocular
    (frames 0, -1, +1) row sees it — one step count for every row, so rows compare at the same budget."""
    if protocol.student_steps or not protocol.student_epochs:
        return protocol.student_steps
    from robustdepth.data import build_items

    protocol_world(protocol)
    cfg = load_config("monodepth2", protocol.common_overrides())
    per_epoch = len(build_items(cfg, cfg.data.train_split, train=True)) // protocol.student_batch_size
    if per_epoch < 1:
        raise ConfigError(f"benchmark protocol: the {protocol.world_preset} world cannot fill one student batch")
    return protocol.student_epochs * per_epoch


def table_protocol(path: str | Path, quick: bool, device: str | None = None) -> BenchProtocol:
    """The protocol a table's command runs: ``path`` loaded, or its smoke-sized copy with ``--quick``; its
    epoch budget resolved to steps; ``device`` (e.g. ``cuda``) for training and evaluation when given."""
    protocol = BenchProtocol.load(path)
    protocol = quick_protocol(protocol) if quick else protocol
    protocol = replace(protocol, device=device or protocol.device)
    return replace(protocol, student_steps=student_budget(protocol))


def runs_root_for(protocol: BenchProtocol, given: str | Path | None) -> Path:
    """A table's runs root: the one given on the command line, else :func:`default_runs_root`."""
    return Path(given) if given else default_runs_root(protocol)


def protocol_world(protocol: BenchProtocol) -> Path:
    """The protocol's world root, rendered once (deterministic; a finished one is reused)."""
    from robustdepth.world import ensure_world

    return ensure_world(protocol.world_preset, protocol.world_seed, protocol.world_root, progress=not protocol.quick)


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
RUN_REGISTRY: dict[str, RowSpec] = {
    # benchmarks/distillation.py, `robustdepth bench methods`
    "md4all_dd": RowSpec("md4all_dd"),
    "syn2real_ra": RowSpec("syn2real_ra", teacher="md4all_dd", day=TEACHER),  # Φ_syn = md4all-DD, Φ_day = teacher
    "acdepth_ld": RowSpec("acdepth_ld"),
    "acdepth_ogd": RowSpec("acdepth_ogd"),
    "acdepth_lc": RowSpec("acdepth_lc"),
    "acdepth": RowSpec("acdepth"),
    # OGD with an ORACLE relative-depth prior (world GT made foundation-model-like; never a method result)
    "acdepth_ogd_oracle": RowSpec("acdepth_ogd_oracle"),
    "acdepth_oracle": RowSpec("acdepth_oracle"),
    # second seeds of the rows that decide what OGD adds (L_d against L_d + OGD with each prior)
    "acdepth_ld_seed43": RowSpec("acdepth_ld", extra=("train.seed=43",)),
    "acdepth_ogd_seed43": RowSpec("acdepth_ogd", extra=("train.seed=43",)),
    "acdepth_ogd_oracle_seed43": RowSpec("acdepth_ogd_oracle", extra=("train.seed=43",)),
    # the run-to-run noise floor of the tables: md4all-DD again with another seed (data order, jitter, degradations)
    "md4all_dd_seed43": RowSpec("md4all_dd", extra=("train.seed=43",)),
    # benchmarks/rosam.py: RA students of Φ_syn (init from it), W_cst and P^day from Φ_day
    **{name: RowSpec(name, teacher="md4all_dd", day=TEACHER)
       for name in ("rosam_ore", "rosam_src", "rosam_arom", "rosam_arom_rgl", "rosam_arom_rgl_ore", "rosam",
                    "rosam_world_masks")},
    # the oracle as it was (sky void: less coverage than felzenszwalb) — what coverage alone changes
    "rosam_world_masks_sky_void": RowSpec("rosam_world_masks", teacher="md4all_dd", day=TEACHER,
                                          extra=("providers.masks.world_sky=void",)),
    # second seeds of the rows that decide RoSAMDepth's claim (Syn2Real-RA against the full model)
    **{f"{name}_seed43": RowSpec(name, teacher="md4all_dd", day=TEACHER, extra=("train.seed=43",))
       for name in ("syn2real_ra", "rosam", "rosam_world_masks")},
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
    "md2_deg_s10": RowSpec("sec_monodepth2", teacher=None, extra=(*_NO_SECL, "degrade.every_n_steps=10")),
    # SEC-Depth's controls (docs/methods.md § SEC-Depth): SECL's positive term alone, a queue never refreshed
    # after the warm-up, and the notes' literal variance trigger (the queue then holds only the last steps)
    "sec_positive_only": RowSpec("sec_positive_only", teacher=None),
    "sec_frozen_queue": RowSpec("sec_frozen_queue", teacher=None),
    "sec_monodepth2_literal": RowSpec("sec_monodepth2", teacher=None,
                                      extra=("providers.latency_queue.trigger=variance",)),
    # a second seed of the rows that decide whether SECL's negatives add anything (seed noise of that claim)
    **{f"{key}_seed43": RowSpec(recipe, teacher=None, extra=(*extra, "train.seed=43"))
       for key, recipe, extra in (("md2_deg_s5", "sec_monodepth2", _NO_SECL), ("sec_monodepth2", "sec_monodepth2", ()),
                                  ("sec_positive_only", "sec_positive_only", ()))},
    "md4all_dd_sec": RowSpec("md4all_dd+sec"),
    "acdepth_sec": RowSpec("acdepth+sec"),
    "rosam_sec": RowSpec("rosam+sec", teacher="md4all_dd", day=TEACHER),
    # all three seed methods in one student (methods table), and the same without the SEC-Depth overlay
    "all": RowSpec("all"),
    "all_no_sec": RowSpec("all", extra=_NO_SECL),
}

_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def row_dir(runs_root: Path, key: str) -> Path:
    """``runs_root/<key>``; keys are lower-case names (no paths), so one key is always one folder."""
    if not _KEY.match(key):
        raise ValueError(f"row key {key!r}: use lower-case letters, digits and underscores")
    return Path(runs_root) / key


SEED_SEPARATOR = "@seed"


def seed_dir(runs_root: Path, key: str, seed: int | None = None) -> Path:
    """The folder of row ``key`` trained with ``seed``: ``runs_root/<key>`` for the protocol's own seed (None),
    ``runs_root/<key>@seed<k>`` for another (``@`` cannot occur in a row key, so no seed folder is a row's)."""
    folder = row_dir(runs_root, key)
    return folder if seed is None else folder.with_name(f"{key}{SEED_SEPARATOR}{int(seed)}")


def seed_alias(key: str, seed: int) -> str | None:
    """A registered ``<key>_seed<k>`` row that IS seed ``k`` of ``key`` (same spec + ``train.seed=k``), whose
    folder (trained by another table) then serves as that seed; None when there is none."""
    alias = f"{key}_seed{seed}"
    if key not in RUN_REGISTRY or alias not in RUN_REGISTRY:
        return None
    spec, other = RUN_REGISTRY[key], RUN_REGISTRY[alias]
    return alias if other == replace(spec, extra=(*spec.extra, f"train.seed={seed}")) else None


def run_folder(protocol: BenchProtocol, runs_root: Path, key: str, seed: int | None = None) -> Path:
    """Where :func:`run_row` keeps row ``key`` trained with ``seed`` (None = the protocol's seed): the teacher's
    shared folder, a registered ``<key>_seed<k>`` twin that is that seed (:func:`seed_alias`), or the seed's
    own folder (:func:`seed_dir`)."""
    if key == TEACHER:
        return row_dir(teacher_root(protocol, runs_root), TEACHER)
    if seed is None or seed == protocol.seed:
        return row_dir(runs_root, key)
    alias = seed_alias(key, seed)
    return row_dir(runs_root, alias) if alias is not None else seed_dir(runs_root, key, seed)


def _mechanics(protocol: BenchProtocol, steps: int) -> list[str]:
    """Run mechanics (ignored when comparing a stored run's config): logging, checkpoints, loaders. A checkpoint
    every tenth of the run bounds what a killed run (out of memory, a lost machine) has to redo."""
    device = [f"train.device={protocol.device}"] if protocol.device else []
    return [f"train.progress={str(not protocol.quick).lower()}", "train.log_every=50", "train.image_every=1000000",
            f"train.ckpt_every={max(50, steps // 10)}", f"data.num_workers={0 if protocol.quick else 1}", *device]


def felzenszwalb_mask_cache(protocol: BenchProtocol, runs_root: Path = RUNS_ROOT, recipe: str = "rosam",
                            extra: tuple[str, ...] | list[str] = ()) -> Path:
    """Felzenszwalb object masks of the training frames in ``runs_root/masks_felzenszwalb`` (written once,
    resumable; refused by write_mask_cache when ``recipe``'s mask parameters differ from the cached ones)."""
    from robustdepth.providers.masks import write_mask_cache

    protocol_world(protocol)
    cache = Path(runs_root) / "masks_felzenszwalb"
    cfg = load_config(recipe, [*protocol.common_overrides(), *extra, "providers.masks.enabled=true",
                               "providers.masks.method=felzenszwalb"])
    write_mask_cache(cfg, cache, progress=not protocol.quick)
    return cache


def day_histogram(day: Path, runs_root: Path = RUNS_ROOT) -> Path:
    """Syn2Real's P^day of the Φ_day checkpoint ``day`` in ``runs_root/day_histograms/<its run>.json`` (once)."""
    from robustdepth.training.day_histogram import compute_day_histogram

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
    protocol_world(protocol)
    schedule = _student_schedule(protocol) if key != TEACHER else []
    if key != TEACHER and protocol.student_overlay:
        recipe = f"{recipe}+{protocol.student_overlay}"
    steps = steps or student_budget(protocol)
    # every row fine-tunes at the protocol's student lr; the teacher (and any row) overrides it in ``extra``
    base = [*protocol.common_overrides(), f"optim.batch_size={batch_size or protocol.student_batch_size}",
            f"optim.lr={protocol.student_lr}", f"optim.max_steps={steps}", *schedule, *_mechanics(protocol, steps),
            f"train.name={key}"]
    if init is not None:
        base.append(f"model.init_checkpoint={init}")
    cfg = load_config(recipe, [*base, *extra])
    if cfg.providers.latency_queue.enabled:
        warmup, refresh = queue_schedule(steps)
        cfg = load_config(recipe, [*base, f"providers.latency_queue.warmup_steps={warmup}",
                                   f"providers.latency_queue.refresh_every={refresh}", *extra])
    resolve_chain(cfg, f"row {key!r} (recipe {recipe!r})", teacher=teacher, day=day,
                  histogram=lambda source: day_histogram(source, runs_root))
    masks = cfg.providers.masks
    if masks.enabled and masks.method == "felzenszwalb" and not masks.cache:
        set_key(cfg, "providers.masks.cache", str(felzenszwalb_mask_cache(protocol, runs_root, recipe, extra)))
    return cfg


def _student_schedule(protocol: BenchProtocol) -> list[str]:
    """The protocol's student lr decay (v2: ×gamma at 3/4 of the epochs), the same for every row; none in
    version 1, whose students kept each recipe's own decay (configs of cached v1 runs stay identical)."""
    if not protocol.student_decay_every_epochs:
        return []
    return [f"optim.decay_every_epochs={protocol.student_decay_every_epochs}", f"optim.gamma={protocol.student_gamma}"]


def train_row(protocol: BenchProtocol, key: str, recipe: str, *, teacher: Path | None = None,
              init: Path | None = None, day: Path | None = None, extra: tuple[str, ...] | list[str] = (),
              runs_root: Path = RUNS_ROOT, steps: int | None = None,
              batch_size: int | None = None, run_dir: Path | None = None) -> tuple[Path, float | None]:
    """Train, resume or reuse the run ``runs_root/<key>`` (or ``run_dir``: a seed's folder, the shared teacher)
    through the runs layer (:func:`robustdepth.training.stages.ensure_run`); returns (last checkpoint, seconds
    per step). A row's seed is part of its experiment: a folder trained with another ``train.seed`` is refused.
    """
    run_dir = Path(run_dir) if run_dir is not None else row_dir(runs_root, key)
    cfg = row_config(protocol, key, recipe, teacher=teacher, init=init, day=day, extra=extra, runs_root=runs_root,
                     steps=steps, batch_size=batch_size)
    outcome = ensure_run(cfg, run_dir, f"row {key!r}", experiment_keys=("train.seed",), recipe=recipe,
                         hint=f"delete {run_dir} to retrain it, or use another runs root")
    return outcome.checkpoint, outcome.s_per_step


def run_row(protocol: BenchProtocol, key: str, runs_root: Path = RUNS_ROOT,
            done: dict[str, tuple[Path, float | None]] | None = None,
            seed: int | None = None) -> tuple[Path, float | None]:
    """The registered row ``key`` (``TEACHER`` or a key of RUN_REGISTRY), its chain first; (checkpoint, s/step).

    ``seed`` trains the row with ``train.seed=seed`` (data order, jitter, degradations) in its seed folder
    (:func:`seed_dir`; the protocol's own seed or None = ``runs_root/<key>``, or a registered ``<key>_seed<k>``
    row that is that seed, :func:`seed_alias`); its chain — teacher, initialisation, Φ_day — is the protocol
    seed's, shared by every seed (the teacher is trained once). ``done`` memoises rows already resolved in
    this process (keys ``<key>`` and ``<key>@seed<k>``; a caller may impose a checkpoint, e.g.
    ``{"teacher": (path, None)}``); it is filled as rows are resolved.
    """
    done = {} if done is None else done
    if seed is not None and seed != protocol.seed:
        if key == TEACHER:
            raise ValueError("the protocol's teacher is trained once, with the protocol's seed; seeds are students'")
        alias = seed_alias(key, seed)
        if alias is not None:
            return run_row(protocol, alias, runs_root, done)
        memo = f"{key}{SEED_SEPARATOR}{seed}"
        if memo not in done:
            inputs = row_inputs(protocol, key, runs_root, done)
            inputs["extra"] = (*inputs["extra"], f"train.seed={seed}")
            done[memo] = train_row(protocol, key, **inputs, run_dir=run_folder(protocol, runs_root, key, seed))
        return done[memo]
    if key in done:
        return done[key]
    if key == TEACHER:
        done[key] = train_row(protocol, TEACHER, protocol.teacher_recipe, extra=[f"optim.lr={protocol.teacher_lr}"],
                              runs_root=runs_root, steps=protocol.teacher_steps,
                              batch_size=protocol.teacher_batch_size,
                              run_dir=run_folder(protocol, runs_root, TEACHER))
        return done[key]
    done[key] = train_row(protocol, key, **row_inputs(protocol, key, runs_root, done))
    return done[key]


def row_inputs(protocol: BenchProtocol, key: str, runs_root: Path = RUNS_ROOT,
               done: dict[str, tuple[Path, float | None]] | None = None) -> dict[str, Any]:
    """train_row's / row_config's keyword arguments of the registered row ``key`` (its chain run first)."""
    if key not in RUN_REGISTRY:
        raise ValueError(f"unknown benchmark row {key!r}; rows: {', '.join([TEACHER, *RUN_REGISTRY])}")
    spec = RUN_REGISTRY[key]
    done = {} if done is None else done

    def ckpt(row: str | None) -> Path | None:
        return None if row is None else run_row(protocol, row, runs_root, done)[0]

    return {"recipe": spec.recipe, "teacher": ckpt(spec.teacher), "init": ckpt(spec.init_row),
            "day": ckpt(spec.day), "extra": spec.extra, "runs_root": runs_root}


def teacher_checkpoint(protocol: BenchProtocol, runs_root: Path = RUNS_ROOT) -> Path:
    """The protocol's day-clear teacher (``runs_root/teacher``), trained once and shared by every table."""
    return run_row(protocol, TEACHER, runs_root)[0]


def student_overrides(protocol: BenchProtocol, teacher: Path) -> list[str]:
    """Overrides of a free-standing student that starts from (and may distil) ``teacher``; rows use RUN_REGISTRY."""
    return [*protocol.common_overrides(), f"optim.batch_size={protocol.student_batch_size}",
            f"model.init_checkpoint={teacher}"]


# ---------------------------------------------------------------------------------------- evaluation


def evaluate_run(protocol: BenchProtocol, checkpoint: Path) -> dict[str, Any]:
    """Per-condition results of a checkpoint on the protocol's split (cached next to the run), with every
    frame's metrics in the sidecar :func:`frames_path` (paired statistics need them; a cached result without
    its sidecar is evaluated again)."""
    from robustdepth.evaluation import get_protocol, load_results, write_results
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.inference import DepthModel

    checkpoint = Path(checkpoint)
    path = checkpoint.parent.parent / f"results_{protocol.eval_protocol}.json"
    frames = frames_path(protocol, checkpoint)
    if all(p.is_file() and p.stat().st_mtime >= checkpoint.stat().st_mtime for p in (path, frames)):
        return load_results(path)
    model = DepthModel.from_checkpoint(checkpoint, device=protocol.device or "auto")
    eval_protocol = get_protocol(protocol.eval_protocol)
    evaluator = evaluate_model(model, model.config, eval_protocol, split=protocol.eval_split,
                               max_frames=protocol.max_frames, progress=not protocol.quick)
    write_results(path, evaluator.summary(), eval_protocol,
                  extra={"checkpoint": str(checkpoint), "bench_protocol": _jsonable(asdict(protocol))})
    records = [{k: v if isinstance(v, str) else float(v) for k, v in frame.items()} for frame in evaluator.per_frame()]
    tmp = frames.with_suffix(".tmp")
    tmp.write_text(json.dumps({"checkpoint": str(checkpoint), "split": protocol.eval_split, "frames": records}))
    os.replace(tmp, frames)
    return load_results(path)


def frames_path(protocol: BenchProtocol, checkpoint: Path) -> Path:
    """The per-frame sidecar of a run's results: ``<run>/results_<eval protocol>_frames.json``."""
    return Path(checkpoint).parent.parent / f"results_{protocol.eval_protocol}_frames.json"


def frame_metrics(protocol: BenchProtocol, checkpoint: Path) -> list[dict[str, Any]]:
    """Every test frame's record of a checkpoint (name ``<sequence>/<condition>/<index>``, condition, metrics),
    evaluated first when not cached."""
    evaluate_run(protocol, checkpoint)
    return json.loads(frames_path(protocol, checkpoint).read_text())["frames"]


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
