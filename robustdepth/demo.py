"""``robustdepth demo`` (``make demo``): the main job end to end on a fresh machine.

1. generate the ``small`` all-weather world (skipped when already there);
2. train Monodepth2 briefly on the clear-day frames, then the combined recipe (``all``: ACDepth +
   RoSAMDepth + SEC-Depth) from it as teacher;
3. evaluate every model per condition on the world's test split (clear, night, rain, fog, snow);
4. predict depth on the real frames in ``../shared/realdata`` when that folder exists;
5. write ``<out>/report.md`` with the table (and the constant-depth predictor every model must beat), a bar
   plot, qualitative panels, and the committed benchmark table of every method (``docs/results/methods.json``,
   made by ``robustdepth bench methods``; the demo's budget trains two models, not seven).

Everything is resumable: finished trainings and evaluations are reused on a second run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from robustdepth.configure import load_config
from robustdepth.devices import resolve_device
from robustdepth.evaluation import get_protocol, load_results, write_results
from robustdepth.evaluation.report import format_table, plot_metric_bars
from robustdepth.evaluation.runner import evaluate_model
from robustdepth.inference import DepthModel, native_bf16
from robustdepth.visualize import colorize_depth, save_panel

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
METHODS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "methods.json"
CONSTANT = "constant depth"

# (label, folder under realdata, glob) of the real frames the demo predicts on.
REAL_FRAMES = (
    ("KITTI day", "kitti_raw_seq_demo_slam/input", "0000000030.png"),
    ("nuScenes night", "night_md4all/resources", "n015-*CAM_FRONT*.jpg"),
    ("RobotCar night", "night_md4all/resources", "1418756721422679.png"),
    ("nuScenes rain", "rain_nuscenes_drivelm", "**/CAM_FRONT/*1537291010612404.jpg"),
    ("DENSE snow", "snow_dense_seeingthroughfog", "**/*.png"),
    ("Foggy Cityscapes", "fog_foggycityscapes_robustdepth/images_test", "*.png"),
    ("Dark Zurich twilight", "twilight_darkzurich_mgcda/data/demo", "GOPR0374*.png"),
)


@dataclass
class DemoPlan:
    """What the demo trains and how long (``quick`` shrinks everything to a smoke test)."""

    # Monodepth2 on clear-day frames (also the teacher of the combined recipe). From scratch it sits on a plateau
    # before the depth structure appears, so the demo buys updates: batch 4 at lr 2e-4, and enough steps to leave
    # the constant-depth predictor behind on clear frames while the adverse failure still shows (the sizing
    # measurements: docs/results/demo_sizing.md).
    baseline_steps: int = 1500
    baseline_lr: float = 2e-4
    # The combined recipe (ACDepth + RoSAMDepth + SEC-Depth) from the baseline, at the lr the baseline ended at
    # (benchmarks/protocol.yaml's rule: a higher lr undoes the teacher's last steps).
    combined_steps: int = 200
    height: int = 64
    width: int = 192
    batch_size: int = 4
    world_preset: str = "small"
    world_root: Path = Path("data/world/small")
    max_eval_frames: int = 0
    quick_run: bool = False
    # Train through the +fast overlay (bf16 network passes + channels_last + fused Adam: docs/results/speed.md,
    # same accuracy within the seed noise) where the training device runs bf16 natively; fp32 elsewhere, where
    # emulated bf16 would be slower.
    fast: bool = field(default_factory=lambda: native_bf16(resolve_device("auto")))

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(baseline_steps=10, combined_steps=4, batch_size=4, quick_run=True)

    def recipe(self, name: str) -> str:
        """The recipe a demo stage trains: ``name``, through the fast overlay when :attr:`fast`."""
        return f"{name}+fast" if self.fast else name

    def overrides(self, name: str, steps: int, lr: float | None = None) -> list[str]:
        return [f"data.root={self.world_root}", f"data.height={self.height}", f"data.width={self.width}",
                f"optim.max_steps={steps}", f"optim.batch_size={self.batch_size}", f"train.name={name}",
                f"train.ckpt_every={max(50, steps // 4)}", *([f"optim.lr={lr}"] if lr else [])]


def demo_world(plan: DemoPlan) -> Path:
    """The demo's world root, rendered once (deterministic; a finished one is reused)."""
    from robustdepth.world import ensure_world

    return ensure_world(plan.world_preset, seed=0, out=plan.world_root, workers=2)


def train_baseline(plan: DemoPlan, out: Path) -> Path:
    """Monodepth2 on the clear training frames (trained once; resumed when interrupted)."""
    from robustdepth.training.stages import ensure_recipe_run

    return ensure_recipe_run(plan.recipe("monodepth2"), out / "monodepth2",
                             plan.overrides("monodepth2", plan.baseline_steps, plan.baseline_lr),
                             plan.baseline_steps).checkpoint


def final_lr(checkpoint: Path) -> float:
    """The learning rate a run ended at (its optimiser state), for the student that continues from it."""
    from robustdepth.checkpoint import load_checkpoint

    return float(load_checkpoint(checkpoint)["optimizer"]["param_groups"][0]["lr"])


def train_combined(plan: DemoPlan, teacher: Path, out: Path) -> Path:
    """The combined recipe ``all`` distilled from the baseline, with felzenszwalb object masks."""
    from robustdepth.providers.masks import write_mask_cache
    from robustdepth.training.pipeline import run_pipeline

    cfg = load_config(plan.recipe("all"), [*plan.overrides("all", plan.combined_steps, final_lr(teacher)),
                              f"providers.teacher.checkpoint={teacher}"])
    write_mask_cache(cfg, out / "masks")
    cfg.providers.masks.cache = str(out / "masks")
    return run_pipeline(cfg, out / "all").checkpoint


def evaluate_recipe(checkpoint: Path, plan: DemoPlan) -> dict:
    """Per-condition results on the world's test split (cached in results_world.json)."""
    path = checkpoint.parent.parent / "results_world.json"
    if path.is_file() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
        return load_results(path)
    model = DepthModel.from_checkpoint(checkpoint)
    protocol = get_protocol("world")
    evaluator = evaluate_model(model, model.config, protocol, split="test", max_frames=plan.max_eval_frames)
    summary = evaluator.summary()
    write_results(path, summary, protocol, extra={"checkpoint": str(checkpoint)})
    return load_results(path)


def evaluate_constant(plan: DemoPlan, out: Path) -> dict:
    """The trivial constant-depth predictor on the same split (cached): the floor a trained model must beat."""
    from robustdepth.evaluation.runner import constant_median_baseline

    path = out / "results_constant.json"
    if path.is_file():
        return load_results(path)
    cfg = load_config("monodepth2", plan.overrides("constant", 1))
    protocol = get_protocol("world")
    write_results(path, constant_median_baseline(cfg, protocol, "test").summary(), protocol)
    return load_results(path)


def benchmark_section(path: Path = METHODS_RESULTS) -> list[str]:
    """Every method's row from the committed methods benchmark (not re-run here), or how to make it."""
    from robustdepth.bench.protocol import rows_to_markdown

    command = "robustdepth bench methods --protocol benchmarks/protocol.yaml"
    if not path.is_file():
        return ["## Every method (benchmark protocol)", "",
                f"`{path}` is not there (an installed package has no docs/): run `{command}` "
                "(its cost: docs/results/bench_cost.md in the repository).", ""]
    result = json.loads(path.read_text())
    p = result["protocol"]
    note = (f"Made by `{command}` (not re-run by the demo), from `docs/results/methods.md`: teacher "
            f"{p['teacher_steps']} steps, every student {p['student_steps']} steps from it, "
            f"world `{p['world_preset']}` "
            f"at {p['height']}×{p['width']}, protocol `{p['eval_protocol']}`. The demo's own two models above are "
            "trained for a fraction of that budget, so their numbers are higher (worse).")
    table = rows_to_markdown(result["rows"], "Every method (benchmark protocol)", note)
    return ["#" + table, ""]  # one heading level below the report's title


def _real_frames() -> list[tuple[str, Path]]:
    frames = []
    for label, folder, pattern in REAL_FRAMES:
        matches = sorted((REALDATA / folder).glob(pattern)) if (REALDATA / folder).is_dir() else []
        if matches:
            frames.append((label, matches[0]))
    return frames


def real_frame_panel(models: dict[str, DepthModel], out: Path) -> Path | None:
    """Image | each model's depth, one row per real frame (None when ../shared/realdata is absent)."""
    frames = _real_frames()
    if not frames:
        return None
    rows, titles = [], []
    for label, path in frames:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB").resize((384, int(384 * img.height / img.width))))
        row = [rgb] + [colorize_depth(m.infer(rgb)) for m in models.values()]
        rows.append(row)
        titles.append([label, *models])
    return save_panel(rows, out / "real_frames.png", titles=titles)


def world_condition_panel(models: dict[str, DepthModel], world_root: Path, out_png: Path,
                          width_inches: float = 4.0) -> Path:
    """One world test frame in every condition: image, GT depth, each model's depth (``width_inches`` per
    column: wide grids of many models pass less to keep the PNG small)."""
    from robustdepth.data.world import world_sequences

    seq = world_sequences(world_root, "test")[0]
    index = seq.num_frames // 2
    rows, titles = [], []
    for condition in seq.conditions:
        with Image.open(seq.image_path(index, condition)) as img:
            rgb = np.asarray(img.convert("RGB"))
        row = [rgb, colorize_depth(seq.depth_gt(index, condition))]
        row += [colorize_depth(m.infer(rgb)) for m in models.values()]
        rows.append(row)
        titles.append([condition, "GT depth", *models])
    return save_panel(rows, out_png, titles=titles, width_inches=width_inches)


def write_report(out: Path, results: dict[str, dict], figures: dict[str, Path | None], plan: DemoPlan) -> Path:
    from robustdepth.bench.protocol import method_row, rows_to_markdown

    numerics = ("through the `+fast` overlay (bf16 network passes, channels_last, fused Adam)" if plan.fast
                else "in fp32")
    intro = (f"World preset `{plan.world_preset}` ({plan.world_root}) at {plan.height}×{plan.width}, batch "
             f"{plan.batch_size}, trained {numerics}. `monodepth2`: {plan.baseline_steps} steps at lr "
             f"{plan.baseline_lr:g}, "
             "self-supervised on clear-day frames. "
             f"`all` (ACDepth + RoSAMDepth + SEC-Depth, recipes/all.yaml): {plan.combined_steps} steps from the "
             "baseline's weights at the lr the baseline ended at, distilling it, on online-degraded copies of the "
             "same clear frames. Evaluation "
             "protocol `world`: 0.1–80 m GT, no crop, per-image median scaling (as KITTI mono), on the test split's "
             f"own renders of each weather. `{CONSTANT}` is the trivial predictor (one depth everywhere, which median "
             "scaling turns into each image's GT median): a model is only useful where its AbsRel is clearly below it.")
    rows = {name: method_row(summary) for name, summary in results.items()}
    lines = ["# robustdepth demo report", "", "#" + rows_to_markdown(rows, "The demo's models", intro), ""]
    if not plan.quick_run:
        lines += benchmark_section()
    for title, fig in figures.items():
        if fig is not None:
            lines += [f"## {title}", "", f"![{title}]({fig.relative_to(out)})", ""]
    lines += ["## Every metric per condition", ""]
    for recipe, summary in results.items():
        lines += [f"### {recipe}", "", format_table(summary, adverse=list(_adverse(summary))), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return report


def _adverse(summary: dict) -> tuple[str, ...]:
    return tuple(c for c in ("night", "rain", "fog", "snow") if c in summary)


def run_demo(out: Path, quick: bool = False, plan: DemoPlan | None = None) -> Path:
    """The whole demo into ``out``; returns the report's path. ``plan`` overrides the default (or quick) one."""
    plan = plan or (DemoPlan.quick() if quick else DemoPlan())
    out.mkdir(parents=True, exist_ok=True)
    demo_world(plan)
    baseline = train_baseline(plan, out)
    checkpoints = {"monodepth2": baseline, "all": train_combined(plan, baseline, out)}
    results = {name: evaluate_recipe(ckpt, plan) for name, ckpt in checkpoints.items()}
    results[CONSTANT] = evaluate_constant(plan, out)
    models = {name: DepthModel.from_checkpoint(ckpt) for name, ckpt in checkpoints.items()}
    figures: dict[str, Path | None] = {
        "AbsRel per condition": plot_metric_bars(results, "abs_rel", out / "abs_rel.png"),
        "One test frame in every condition": world_condition_panel(models, plan.world_root,
                                                                   out / "world_conditions.png"),
        "Real frames (../shared/realdata)": real_frame_panel(models, out),
    }
    return write_report(out, results, figures, plan)
