"""Where a training step's time goes: data, depth / pose / provider forwards, every loss term, backward, optimiser.

    .venv/bin/python benchmarks/profile_step.py --quick                    # smoke: 64×192, monodepth2, 2 steps
    .venv/bin/python benchmarks/profile_step.py --world data/world/tiny    # 64×192 and 192×640 × three recipes

Each recipe trains on the embedded world (``robustdepth world generate --preset tiny``) through the real
:class:`~robustdepth.training.trainer.Trainer`; its ``train_step`` is unchanged, the parts are timed by
hooks around it:

* forward hooks on the depth and pose networks and on every loss term (exclusive time: a term's row excludes
  the network passes and providers it triggered, which get their own rows);
* the providers' ``get`` (teacher, masks, queues), ``Tensor.backward``, the trainer's ``gradient_norm`` and the
  optimiser's ``step``, wrapped for the duration of the profile only;
* ``data``: the loader's ``next`` (workers off, the frame cache on: what a step waits for in steady state);
* ``other``: the step's remainder (StepContext, BatchNorm buffer copies, logging, scheduler).

The recipes that need frozen models (md4all_dd's teacher, ``all``'s teacher and masks) get a randomly
initialised Monodepth2 checkpoint and a Felzenszwalb mask cache made on the spot: the arithmetic is the same
as with trained weights. Terms that switch on late in training (``start_fraction``) are switched on from the
first step so every term is measured. One step under ``torch.profiler`` per case gives the top operators.

Results: ``docs/results/speed_profile.json`` and the "Step profile" section of ``speed.md`` (written by
``robustdepth.bench.speed_report``, the renderer benchmarks/speed.py also uses, so either script keeps the
other's sections). Times on a shared host are only indicative; the shares within one step are what this measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from robustdepth.bench.photometric_reference import PREVIOUS_STEP_PATHS, previous_step_paths, reference_loss
from robustdepth.bench.script import run_script
from robustdepth.bench.speed_report import render_markdown
from robustdepth.bench.timing import alternate, cpu_description, fast_overlay, paired_speedup, step_gflop
from robustdepth.configure import load_config
from robustdepth.training import trainer as trainer_module
from robustdepth.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("monodepth2", "md4all_dd", "all")
# the `RECIPE+fast` overlay (recipes/fast.yaml): bf16 autocast, channels_last, fused Adam
FAST = fast_overlay()  # exactly RECIPE+fast
COMMON = {"data.num_workers": 0, "optim.batch_size": 4, "train.progress": False, "train.log_every": 10**6,
          "train.image_every": 10**7, "train.ckpt_every": 10**7, "optim.max_steps": 10**6}
LATE_TERMS = {"all": {"losses.feature_consistency.start_fraction": 0.0}}


class PartTimer:
    """Exclusive wall time per named part: a part's time excludes the parts that run inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [name, start, time spent in children]

    def start(self, name: str) -> None:
        self._stack.append([name, time.perf_counter(), 0.0])

    def stop(self) -> None:
        name, t0, children = self._stack.pop()
        spent = time.perf_counter() - t0
        self.totals[name] = self.totals.get(name, 0.0) + spent - children
        if self._stack:
            self._stack[-1][2] += spent

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return fn(*args, **kwargs)
        return timed


def _hook(module: torch.nn.Module, timer: PartTimer, name: str) -> list[Any]:
    return [module.register_forward_pre_hook(lambda *_: timer.start(name)),
            module.register_forward_hook(lambda *_: timer.stop())]


@contextlib.contextmanager
def instrumented(trainer: Trainer, timer: PartTimer) -> Iterator[None]:
    """Timers around the parts of ``trainer.train_step`` (removed on exit)."""
    handles = _hook(trainer.models.depth, timer, "depth forward")
    if trainer.models.pose is not None:
        handles += _hook(trainer.models.pose, timer, "pose forward")
    for name, term in trainer.losses.terms.items():
        handles += _hook(term, timer, f"loss: {name}")
    providers_get, backward = trainer.providers.get, torch.Tensor.backward
    norm, opt_step = trainer_module.gradient_norm, trainer.optimizer.step
    trainer.providers.get = lambda name, ctx: timer.wrap(f"provider: {name}", providers_get)(name, ctx)
    torch.Tensor.backward = timer.wrap("backward", backward)  # type: ignore[method-assign]
    trainer_module.gradient_norm = timer.wrap("optimiser", norm)
    trainer.optimizer.step = timer.wrap("optimiser", opt_step)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        del trainer.providers.get
        del trainer.optimizer.step
        torch.Tensor.backward = backward  # type: ignore[method-assign]
        trainer_module.gradient_norm = norm


def frozen_checkpoint(world: Path, out: Path, height: int, width: int) -> Path:
    """A randomly initialised Monodepth2 checkpoint (depth + pose) standing in for a trained teacher."""
    cfg = load_config("monodepth2", _overrides(world, height, width))
    trainer = Trainer(cfg, run_dir=out)
    path = trainer.save()
    trainer.close()
    assert path is not None
    return path


def _overrides(world: Path, height: int, width: int, **extra: Any) -> list[str]:
    over = {**COMMON, "data.root": str(world), "data.height": height, "data.width": width, **extra}
    return [f"{k}={v}" for k, v in over.items()]


def build_trainer(recipe: str, world: Path, tmp: Path, height: int, width: int, teacher: Path,
                  extra: dict[str, Any]) -> Trainer:
    """The recipe's trainer on the world at H×W; frozen models and masks made on the spot."""
    over: dict[str, Any] = {**LATE_TERMS.get(recipe, {}), **extra}
    probe = load_config(recipe, _overrides(world, height, width, **over))
    if probe.providers.teacher.enabled:
        over["providers.teacher.checkpoint"] = teacher
        over["model.init_checkpoint"] = teacher
    if probe.providers.masks.enabled:
        from robustdepth.providers.masks import write_mask_cache

        cache = tmp / f"masks_{height}x{width}"
        over["providers.masks.cache"] = cache
        cfg = load_config(recipe, _overrides(world, height, width, **over))
        if not cache.is_dir():
            write_mask_cache(cfg, cache, progress=False)
    cfg = load_config(recipe, _overrides(world, height, width, **over))
    return Trainer(cfg, run_dir=tmp / f"run_{recipe}_{height}x{width}_{len(extra)}")


def profile_case(trainer: Trainer, steps: int, warmup: int) -> dict[str, Any]:
    """Median per-part seconds over ``steps`` instrumented steps (after ``warmup`` plain ones)."""
    batches = trainer._batches()
    for _ in range(warmup):
        trainer.train_step(next(batches))
    per_step: list[dict[str, float]] = []
    for _ in range(steps):
        timer = PartTimer()
        t0 = time.perf_counter()
        with timer.part("data"):
            batch = next(batches)
        with instrumented(trainer, timer), timer.part("other"):
            trainer.train_step(batch)
        timer.totals["step"] = time.perf_counter() - t0
        per_step.append(timer.totals)
    names = sorted({k for d in per_step for k in d}, key=lambda k: -statistics.median(d.get(k, 0) for d in per_step))
    parts = {k: statistics.median(d.get(k, 0.0) for d in per_step) for k in names}
    return {"parts_s": parts, "steps": steps, "gflop": step_gflop(lambda: trainer.train_step(next(batches))),
            "top_ops": top_operators(trainer, batches)}


def top_operators(trainer: Trainer, batches: Iterator[dict[str, Any]], n: int = 12) -> list[dict[str, Any]]:
    """One step under torch.profiler: the operators with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    batch = next(batches)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_step(batch)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:n]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    return [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in rows]


def photometric_paths(world: Path, tmp: Path, sizes: list[tuple[int, int]], rounds: int) -> dict[str, Any]:
    """The Monodepth2 photometric term alone (forward + backward to the depth maps and poses), fused path vs
    the previous one (robustdepth.bench.photometric_reference, the equivalence test's reference too), ALTERNATED
    in one process on one batch."""
    rows = {f"{h}x{w}": _photometric_row(world, tmp, h, w, rounds) for h, w in sizes}
    return {"rows": rows, "note": "The photometric term's forward and backward (batch 4, 3 frames, 4 scales; the "
            "network outputs are fixed leaves, so only the loss is timed), previous per-(scale, source) path vs "
            f"the fused one, alternated in one process ({rounds} rounds; speed-up = median of per-round ratios)."}


def _photometric_row(world: Path, tmp: Path, height: int, width: int, rounds: int) -> dict[str, Any]:
    from robustdepth.geometry import Pose
    from robustdepth.networks import DepthOutput
    from robustdepth.training.context import StepContext, StepState

    cfg = load_config("monodepth2", _overrides(world, height, width))
    trainer = Trainer(cfg, run_dir=tmp / f"photometric_{height}x{width}")
    batch = trainer._to_device(next(trainer._batches()))
    term = trainer.losses.terms["photometric"]

    def context() -> StepContext:
        return StepContext(batch, trainer.depth_net, trainer.pose_net, trainer.providers, StepState(0, 1, 0, 1),
                           cfg, torch.Generator().manual_seed(0), trainer.device)

    probe = context()
    view = probe.resolve_view(term.cfg.view)
    with torch.no_grad():
        out = probe.depth(view)
        poses = {f: probe.pose(f).matrix for f in probe.source_ids}

    def run(fused: bool) -> None:
        ctx = context()  # network outputs as fresh leaves: the loss and its backward are all that runs
        ctx._memo[("depth", view, True)] = DepthOutput(*([t.detach().requires_grad_() for t in g] for g in out))
        for f, m in poses.items():
            ctx._memo[("pose", f)] = Pose(m.detach().requires_grad_())
        loss = term(ctx)[0] if fused else reference_loss(ctx, term.cfg)
        loss.backward()

    row = before_after(lambda: run(False), lambda: run(True), "fused", rounds)
    trainer.close()
    print(f"photometric {height}x{width}: {row}", flush=True)
    return row


def before_after(previous: Callable[[], Any], current: Callable[[], Any], name: str, rounds: int) -> dict[str, Any]:
    """``previous`` and ``current`` alternated in one process (one warm-up round, then ``rounds``): their median
    times as ``previous_ms`` / ``<name>_ms`` and the paired speed-up."""
    variants = {"previous": previous, name: current}
    alternate(variants, 1, torch.device("cpu"))
    times = alternate(variants, rounds, torch.device("cpu"))
    return {"previous_ms": statistics.median(times["previous"]) * 1e3,
            f"{name}_ms": statistics.median(times[name]) * 1e3,
            "speedup": paired_speedup(times["previous"], times[name]), "rounds": rounds}


def step_paths(world: Path, tmp: Path, sizes: list[tuple[int, int]], rounds: int) -> dict[str, Any]:
    """A whole Monodepth2+fast training step (bf16 + channels_last, fused Adam) on one fixed batch, the previous
    paths (:func:`previous_step_paths`) against the current ones, alternated in one process; per resolution the
    median step and the paired speed-up."""
    rows: dict[str, Any] = {}
    for height, width in sizes:
        cfg = load_config("monodepth2", _overrides(world, height, width, **FAST))
        trainer = Trainer(cfg, run_dir=tmp / f"step_paths_{height}x{width}")
        batch = next(trainer._batches())

        def previous(trainer: Trainer = trainer, batch: dict[str, Any] = batch) -> None:
            with previous_step_paths():
                trainer.train_step(batch)

        row = before_after(previous, lambda trainer=trainer, batch=batch: trainer.train_step(batch), "current", rounds)
        trainer.close()
        rows[f"{height}x{width}"] = row
        print(f"step paths {height}x{width}: {row}", flush=True)
    return {"rows": rows, "batch_size": COMMON["optim.batch_size"], "config": FAST, "note": PREVIOUS_STEP_PATHS}


def optimiser_paths(rounds: int) -> dict[str, Any]:
    """Adam's step over the Monodepth2 depth + pose weights: torch's default CPU path (a per-tensor loop) vs
    ``foreach`` and ``fused``, alternated; and how far each drifts from the default after 5 identical steps."""
    from robustdepth.training.trainer import build_models

    cfg = load_config("monodepth2")
    gen = torch.Generator().manual_seed(0)
    variants: dict[str, Any] = {}
    models: dict[str, Any] = {}
    base = build_models(cfg, need_pose=True)
    grads = [torch.randn(p.shape, generator=gen) * 1e-3 for p in base.parameters()]
    for name, kwargs in {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}.items():
        model = build_models(cfg, need_pose=True)
        model.load_state_dict(base.state_dict())
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g.clone()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, **kwargs)
        models[name] = model
        variants[name] = opt.step
    for _ in range(5):
        for step in variants.values():
            step()
    ref = torch.cat([p.detach().flatten() for p in models["default"].parameters()])
    drift = {name: float((torch.cat([p.detach().flatten() for p in m.parameters()]) - ref).abs().max())
             for name, m in models.items()}
    times = alternate(variants, rounds, torch.device("cpu"))
    out = {name: {"step_ms": statistics.median(ts) * 1e3, "speedup": paired_speedup(times["default"], ts),
                  "max_abs_drift_after_5_steps": drift[name]} for name, ts in times.items()}
    print(f"optimiser: {out}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=REPO / "data" / "world" / "tiny")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--resolutions", default="64x192,192x640")
    parser.add_argument("--steps", type=int, default=3, help="instrumented steps per case (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--fast", action="store_true",
                        help="also profile RECIPE+fast (bf16 + channels_last + fused Adam)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--quick", action="store_true", help="smoke size: monodepth2 at 64×192, 2 steps")
    parser.add_argument("--optimiser-rounds", type=int, default=0,
                        help="also time Adam's default CPU step against foreach / fused (alternating rounds)")
    parser.add_argument("--photometric-rounds", type=int, default=0,
                        help="also time the fused photometric path against the previous one (alternating rounds)")
    parser.add_argument("--step-paths-rounds", type=int, default=0,
                        help="also time a whole fast Monodepth2 step with the previous paths (SSIM means, decoder "
                             "pads, gradient norm, weight casts) against the current ones (alternating rounds)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    if args.quick:
        args.recipes, args.resolutions, args.steps, args.warmup = "monodepth2", "64x192", 2, 1
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not (args.world / "world.json").is_file():
        raise SystemExit(f"no world at {args.world}: robustdepth world generate --preset tiny --out {args.world}")
    photometric: dict[str, Any] = {}
    variants = {"fp32": {}, **({"fast": FAST} if args.fast else {})}
    cases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for size in args.resolutions.split(","):
            h, w = (int(v) for v in size.split("x"))
            teacher = frozen_checkpoint(args.world, tmp / f"teacher_{size}", h, w)
            for recipe in filter(None, args.recipes.split(",")):
                for variant, extra in variants.items():
                    trainer = build_trainer(recipe, args.world, tmp, h, w, teacher, extra)
                    case = profile_case(trainer, args.steps, args.warmup)
                    trainer.close()
                    key = f"{recipe} {size} {variant}"
                    cases[key] = case
                    print(key, json.dumps(case["parts_s"]), flush=True)
        if args.photometric_rounds:
            photometric = photometric_paths(args.world, tmp, [tuple(int(v) for v in size.split("x"))
                                                               for size in args.resolutions.split(",")],
                                            args.photometric_rounds)
        if args.step_paths_rounds:
            steps = step_paths(args.world, tmp, [tuple(int(v) for v in size.split("x"))
                                                 for size in args.resolutions.split(",")], args.step_paths_rounds)
    out = {"machine": f"{cpu_description()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
           "load_average": list(os.getloadavg()), "batch_size": COMMON["optim.batch_size"],
           "command": "python benchmarks/profile_step.py " + " ".join(sys.argv[1:]), "cases": cases}
    if args.photometric_rounds:
        out["photometric_paths"] = photometric
    if args.step_paths_rounds:
        out["step_paths"] = steps
    if args.optimiser_rounds:
        out["optimiser_paths"] = optimiser_paths(args.optimiser_rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("speed_profile_quick.json" if args.quick else "speed_profile.json")
    path.write_text(json.dumps(out, indent=1))
    if not args.quick:
        render_markdown(args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(run_script(main))
