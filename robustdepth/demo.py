"""``robustdepth demo`` (``make demo``): the main job end to end on a fresh machine.

1. generate the ``small`` all-weather world (skipped when already there);
2. train each demo recipe briefly on its clear-day training frames;
3. evaluate every model per condition on the world's test split (clear, night, rain, fog, snow);
4. predict depth on the real frames in ``../shared/realdata`` when that folder exists;
5. write ``<out>/report.md`` with the table, a bar plot and qualitative panels.

Everything is resumable: finished trainings and evaluations are reused on a second run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from robustdepth.config import load_config
from robustdepth.evaluation import get_protocol, load_results, write_results
from robustdepth.evaluation.report import adverse_mean, format_table, plot_metric_bars
from robustdepth.evaluation.runner import evaluate_model
from robustdepth.inference import DepthModel
from robustdepth.training.checkpoint import load_checkpoint
from robustdepth.training.trainer import train
from robustdepth.visualize import colorize_depth, save_panel

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

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
    """What the demo trains: recipes, step budgets and resolution (``quick`` shrinks everything)."""

    recipes: list[str] = field(default_factory=lambda: ["monodepth2"])
    steps: int = 600
    height: int = 64
    width: int = 192
    batch_size: int = 8
    world_preset: str = "small"
    world_root: Path = Path("data/world/small")
    max_eval_frames: int = 0

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(steps=20, batch_size=4, max_eval_frames=25)


def ensure_world(plan: DemoPlan) -> Path:
    """The world root, generated once (the generator is deterministic and skips finished files)."""
    from robustdepth.world import generate

    if not (plan.world_root / "world.json").is_file():
        generate(plan.world_preset, seed=0, out=plan.world_root)
    return plan.world_root


def train_recipe(recipe: str, plan: DemoPlan, out: Path) -> Path:
    """Train (or reuse) one recipe; returns its last checkpoint."""
    run_dir = out / recipe
    last = run_dir / "checkpoints" / "last.pt"
    overrides = [f"data.root={plan.world_root}", f"data.height={plan.height}", f"data.width={plan.width}",
                 f"optim.max_steps={plan.steps}", f"optim.batch_size={plan.batch_size}",
                 f"train.name={recipe}", f"train.ckpt_every={max(50, plan.steps // 4)}"]
    cfg = load_config(recipe, overrides)
    if last.is_file() and load_checkpoint(last)["step"] >= plan.steps:
        return last
    resume = last if last.is_file() else None
    return train(cfg, run_dir=run_dir, resume=resume) or last


def evaluate_recipe(checkpoint: Path, plan: DemoPlan, out: Path) -> dict:
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


def world_condition_panel(models: dict[str, DepthModel], world_root: Path, out_png: Path) -> Path:
    """One world test frame in every condition: image, GT depth, each model's depth."""
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
    return save_panel(rows, out_png, titles=titles)


def write_report(out: Path, results: dict[str, dict], figures: dict[str, Path | None], plan: DemoPlan) -> Path:
    lines = ["# robustdepth demo report", "",
             f"World preset `{plan.world_preset}` ({plan.world_root}), training {plan.steps} steps at "
             f"{plan.height}×{plan.width}, batch {plan.batch_size}, clear-day training frames only.",
             "Evaluation protocol `world`: 0.1–80 m GT, no crop, per-image median scaling (as KITTI mono).", ""]
    for recipe, summary in results.items():
        lines += [f"## {recipe}", "", format_table(summary, adverse=list(_adverse(summary))), ""]
        lines += [f"Adverse mean AbsRel: {adverse_mean(summary, _adverse(summary))['abs_rel']:.4f}", ""]
    for title, fig in figures.items():
        if fig is not None:
            lines += [f"## {title}", "", f"![{title}]({fig.relative_to(out)})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return report


def _adverse(summary: dict) -> tuple[str, ...]:
    return tuple(c for c in ("night", "rain", "fog", "snow") if c in summary)


def run_demo(out: Path, quick: bool = False) -> Path:
    plan = DemoPlan.quick() if quick else DemoPlan()
    out.mkdir(parents=True, exist_ok=True)
    ensure_world(plan)
    checkpoints = {recipe: train_recipe(recipe, plan, out) for recipe in plan.recipes}
    results = {recipe: evaluate_recipe(ckpt, plan, out) for recipe, ckpt in checkpoints.items()}
    models = {recipe: DepthModel.from_checkpoint(ckpt) for recipe, ckpt in checkpoints.items()}
    figures: dict[str, Path | None] = {
        "AbsRel per condition": plot_metric_bars(results, "abs_rel", out / "abs_rel.png"),
        "One test frame in every condition": world_condition_panel(models, plan.world_root,
                                                                   out / "world_conditions.png"),
        "Real frames (../shared/realdata)": real_frame_panel(models, out),
    }
    return write_report(out, results, figures, plan)
