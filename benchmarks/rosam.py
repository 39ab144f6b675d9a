"""RoSAMDepth on the world under benchmarks/protocol.yaml: Syn2Real-RA vs RoSAMDepth (felzenszwalb masks) vs
RoSAMDepth with ORACLE masks (the world's object ids), plus the paper's ablation rows, per condition and
adverse mean, and a qualitative panel (image, masks, teacher, student, M_out, W_rel) for a night and a rain frame.

    .venv/bin/python benchmarks/rosam.py            # full protocol → docs/results/rosam.{json,md}, rosam_panel.png
    .venv/bin/python benchmarks/rosam.py --quick    # tiny smoke version → docs/results/rosam_quick.{json,md,_panel.png}

Chain (METHODS.md §4–5): Φ_day = the protocol's cached day-clear Monodepth2 teacher (``runs/bench/teacher``,
shared with the distillation table; trained there once when missing); Φ_syn = an md4all-DD student of Φ_day
(Syn2Real's SA stage in its depth-distillation form, ``RUNS/phi_syn``); every row below is an RA student
initialised from Φ_syn, labelled by Φ_syn with W_cst from Φ_day, with the day-histogram KL prior of Φ_day.
All rows share seed, step budget, batch and learning rate (1e-4, Syn2Real's; the rosam recipe's 8e-5 is
overridden so that rows differ only in the method). Everything is cached and resumable: the world, the
teacher, Φ_syn, the mask cache, each run (robustdepth.training.pipeline.run_stage) and each evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robustdepth.bench.protocol import (  # noqa: E402
    ADVERSE,
    BenchProtocol,
    ensure_world,
    evaluate_run,
    method_row,
    rows_to_markdown,
    teacher_checkpoint,
)
from robustdepth.config import load_config  # noqa: E402
from robustdepth.training.pipeline import run_stage  # noqa: E402

LR = 1.0e-4
# row name → (recipe, extra overrides); "masks" rows read the felzenszwalb cache, world rows need none
ROWS: dict[str, tuple[str, list[str]]] = {
    "syn2real_ra": ("syn2real_ra", []),
    "rosam_ore": ("rosam_ore", []),
    "rosam_src": ("rosam_src", []),
    "rosam_arom": ("rosam_arom", []),
    "rosam_arom_rgl": ("rosam_arom_rgl", []),
    "rosam_arom_rgl_ore": ("rosam_arom_rgl_ore", []),
    "rosam": ("rosam", []),
    "rosam_world_masks": ("rosam_world_masks", []),
}
PAPER_ORDER = ("rosam_ore", "rosam_src", "rosam_arom", "rosam_arom_rgl", "rosam_arom_rgl_ore", "rosam")
PAPER_NIGHT_ABSREL = {"syn2real_ra": 0.1792, "rosam_ore": 0.1734, "rosam_src": 0.1725, "rosam_arom": 0.1711,
                      "rosam_arom_rgl": 0.1699, "rosam_arom_rgl_ore": 0.1673, "rosam": 0.1667}


def quick_protocol(protocol: BenchProtocol) -> BenchProtocol:
    """A smoke-sized copy: the tiny world, a few steps, small batches."""
    return replace(protocol.scaled(0.01, world_preset="tiny"), teacher_steps=6, student_steps=3,
                   teacher_batch_size=4, student_batch_size=2)


def run_overrides(protocol: BenchProtocol, steps: int, quick: bool) -> list[str]:
    extra = ["data.num_workers=0", "train.progress=false"] if quick else []
    return [*protocol.common_overrides(), f"optim.batch_size={protocol.student_batch_size}", f"optim.max_steps={steps}",
            "train.log_every=100000", "train.image_every=1000000", f"train.ckpt_every={max(50, steps // 4)}", *extra]


def timed_stage(cfg: Any, run_dir: Path, name: str, steps: int) -> tuple[Path, float | None]:
    """run_stage plus seconds per step when this call trained it (cached in timing.json)."""
    timing = run_dir / "timing.json"
    t0 = time.perf_counter()
    last, action = run_stage(cfg, run_dir, name)
    if action != "reused":
        timing.write_text(json.dumps({"s_per_step": (time.perf_counter() - t0) / steps, "action": action,
                                      "load_average": os.getloadavg()[0]}))
    return last, (json.loads(timing.read_text())["s_per_step"] if timing.is_file() else None)


def phi_syn(protocol: BenchProtocol, day: Path, runs: Path, quick: bool) -> Path:
    """Syn2Real's Φ_syn: an md4all-DD student of Φ_day, trained once for the student budget."""
    steps = protocol.student_steps
    cfg = load_config("md4all_dd", [*run_overrides(protocol, steps, quick), f"providers.teacher.checkpoint={day}",
                                    f"model.init_checkpoint={day}", f"optim.lr={LR}", "train.name=phi_syn"])
    return run_stage(cfg, runs / "phi_syn", "phi_syn")[0]


def mask_cache(protocol: BenchProtocol, runs: Path, quick: bool) -> Path:
    from robustdepth.priors.masks import write_mask_cache

    cache = runs / "masks_felzenszwalb"
    cfg = load_config("rosam", run_overrides(protocol, 1, quick))
    write_mask_cache(cfg, cache, progress=not quick)
    return cache


def row_config(protocol: BenchProtocol, recipe: str, extra: list[str], chain: dict[str, Path], quick: bool) -> Any:
    over = [*run_overrides(protocol, protocol.student_steps, quick), f"optim.lr={LR}",
            f"providers.teacher.checkpoint={chain['syn']}", f"providers.day_model.checkpoint={chain['day']}",
            f"model.init_checkpoint={chain['syn']}", f"losses.syn2real_kl.prior_path={chain['histogram']}",
            f"train.name={recipe}", *extra]
    cfg = load_config(recipe, over)
    if cfg.providers.masks.enabled and cfg.providers.masks.method != "world":
        cfg.providers.masks.cache = str(chain["masks"])
    return cfg


def ablation_ordering(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Gain of each ablation row over Syn2Real-RA in adverse-mean AbsRel, ordered; agreement with the paper."""
    base = rows["syn2real_ra"]["adverse_mean"]["abs_rel"]
    gains = {n: base - rows[n]["adverse_mean"]["abs_rel"] for n in PAPER_ORDER if n in rows}
    observed = sorted(gains, key=lambda n: gains[n])
    names = [n for n in PAPER_ORDER if n in gains]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    concordant = sum(gains[a] < gains[b] for a, b in pairs)
    paper_gains = {n: PAPER_NIGHT_ABSREL["syn2real_ra"] - PAPER_NIGHT_ABSREL[n] for n in names}
    return {"gain_adverse_abs_rel": gains, "observed_order": observed, "paper_order": names,
            "concordant_pairs": f"{concordant}/{len(pairs)}", "paper_gain_night_abs_rel": paper_gains}


# --------------------------------------------------------------------------------------------- the panel


def _panel_frames(cfg: Any, condition: str) -> dict[str, Any]:
    """Target + source frames (clean) and the adverse target of the first test frame with neighbours."""
    from robustdepth.data import build_items
    from robustdepth.data.base import FrameDataset

    items = build_items(cfg, cfg.data.test_split, train=True)
    pick = next(it for it in items if it.condition == condition)
    clear = next(it for it in items if it.condition == "clear" and it.sequence.name == pick.sequence.name
                 and it.index == pick.index)
    ds = FrameDataset([clear, pick], cfg.data.height, cfg.data.width, frame_ids=[0, -1, 1])
    clean, adverse = ds[0], ds[1]
    return {"clean": clean, "adverse": adverse[("color", 0)], "name": f"{pick.sequence.name}#{pick.index}"}


@torch.no_grad()
def make_panel(cfg: Any, chain: dict[str, Path], student: Path, out: Path, title: str) -> Path:
    """Rows = night, rain; columns = adverse image, masks, teacher d_t, student d_s, M_out, W_rel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustdepth.geometry import Camera, Pose
    from robustdepth.losses.rosam import adaptive_outlier_mask, min_photometric_error, object_reliability, region_index
    from robustdepth.networks import disp_to_depth, relative_pose
    from robustdepth.priors.masks import build_segmenter
    from robustdepth.priors.teacher import load_frozen

    cfg.data.test_split = cfg.eval.split
    cfg.data.train_conditions = ["clear", "night", "rain"]  # the panel's items come from the test split
    teacher, _, tcfg = load_frozen(chain["syn"])
    _, day_pose, _ = load_frozen(chain["day"])
    student_net, _, scfg = load_frozen(student)
    segment = build_segmenter(cfg.providers.masks)
    rp = cfg.providers.rosam
    fig, axes = plt.subplots(2, 6, figsize=(20, 4.2))
    for row, condition in enumerate(("night", "rain")):
        f = _panel_frames(cfg, condition)
        clean = f["clean"]
        image = f["adverse"][None]
        rgb = (clean[("color", 0)].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        masks = torch.from_numpy(segment(rgb))[None]
        d_t = disp_to_depth(teacher(image).disp[0], tcfg.model.min_depth, tcfg.model.max_depth)[0]
        d_s = disp_to_depth(student_net(image).disp[0], scfg.model.min_depth, scfg.model.max_depth)[0]
        index = region_index(masks, int(rp.min_region_pixels))
        arom = adaptive_outlier_mask(d_t, index, rp.tau0, rp.lam, rp.kappa, rp.sigma_eps)
        target = clean[("color", 0)][None]
        poses = [Pose(relative_pose(day_pose, target, clean[("color", s)][None], source_is_before=s < 0).matrix)
                 for s in (-1, 1)]
        pe = min_photometric_error(target, [clean[("color", s)][None] for s in (-1, 1)], 1.0 / d_t, poses,
                                   Camera(clean["K"][None]), rp.ore_ssim_alpha)
        w_rel = object_reliability(pe, index, rp.ore_beta, rp.ore_eps)
        panels = [(f["adverse"].permute(1, 2, 0).numpy(), f"{condition}: {f['name']}", None),
                  (masks[0].numpy() % 20, f"felzenszwalb masks ({int(masks.max())})", "tab20"),
                  (d_t[0, 0].numpy(), "teacher Φ_syn d_t", "magma"), (d_s[0, 0].numpy(), "RoSAMDepth d_s", "magma"),
                  (arom.m_out[0, 0].numpy(), "M_out (AROM)", "gray"), (w_rel[0, 0].numpy(), "W_rel (ORE)", "viridis")]
        for ax, (img, label, cmap) in zip(axes[row], panels):
            ax.imshow(img, cmap=cmap, vmin=0 if label.startswith("M_out") else None,
                      vmax=1 if label.startswith("M_out") else None, interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ------------------------------------------------------------------------------------------------- main


def to_markdown(result: dict[str, Any]) -> str:
    o = result["ablation"]
    note = (f"{'Quick smoke run (tiny world, a few steps): numbers are NOT meaningful.' if result['quick'] else ''} "
            f"Command: `{result['command']}`. Protocol: {result['protocol']}. Every row: the same Φ_syn init, "
            f"seed {result['seed']}, {result['student_steps']} steps, batch {result['batch_size']}, lr {LR}. "
            "rosam = full model with weight-free felzenszwalb masks; rosam_world_masks = ORACLE masks.")
    lines = [rows_to_markdown(result["rows"], "RoSAMDepth on the world", note), "## Ablation ordering", "",
             "Gain = Syn2Real-RA adverse AbsRel − row adverse AbsRel (positive = better).", "",
             "| row | gain (ours, adverse mean) | paper gain (nuScenes night) |", "|---|---:|---:|"]
    for n in o["paper_order"]:
        lines.append(f"| {n} | {o['gain_adverse_abs_rel'][n]:+.4f} | {o['paper_gain_night_abs_rel'][n]:+.4f} |")
    lines += ["", f"Paper order (increasing gain): {' < '.join(o['paper_order'])}.",
              f"Observed order: {' < '.join(o['observed_order'])} ({o['concordant_pairs']} pairs agree).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, a few steps (smoke test)")
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--runs", default=None, help="runs root (default runs/bench, quick: runs/bench_rosam_quick)")
    parser.add_argument("--only", nargs="*", default=None, help="row names (default all)")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    protocol = BenchProtocol.load(args.protocol)
    if args.quick:
        protocol = quick_protocol(protocol)
    runs_root = Path(args.runs) if args.runs else REPO / "runs" / ("bench_rosam_quick" if args.quick else "bench")
    protocol = replace(protocol, world_root=REPO / protocol.world_root)
    ensure_world(protocol)
    day = teacher_checkpoint(protocol, runs_root)  # the shared cached day-clear teacher (Φ_day)
    runs = runs_root / "rosam"
    syn = phi_syn(protocol, day, runs, args.quick)
    from robustdepth.priors.histogram import compute_day_histogram

    histogram = runs / "day_histogram.json"
    if not histogram.is_file():
        compute_day_histogram(day, histogram)
    chain = {"day": day, "syn": syn, "histogram": histogram, "masks": mask_cache(protocol, runs, args.quick)}

    rows: dict[str, dict[str, Any]] = {}
    checkpoints: dict[str, Path] = {}
    for name, (recipe, extra) in ROWS.items():
        if args.only and name not in args.only:
            continue
        cfg = row_config(protocol, recipe, extra, chain, args.quick)
        last, s_per_step = timed_stage(cfg, runs / name, name, protocol.student_steps)
        checkpoints[name] = last
        rows[name] = method_row(evaluate_run(protocol, last), s_per_step)
        print(f"{name}: adverse AbsRel {rows[name]['adverse_mean']['abs_rel']:.4f}", flush=True)

    stem = "rosam_quick" if args.quick else "rosam"
    result = {"quick": args.quick, "command": "python benchmarks/rosam.py" + (" --quick" if args.quick else ""),
              "protocol": str(Path(args.protocol).relative_to(REPO)) if Path(args.protocol).is_relative_to(REPO)
              else args.protocol, "seed": protocol.seed, "student_steps": protocol.student_steps,
              "batch_size": protocol.student_batch_size, "lr": LR, "world": protocol.world_preset,
              "chain": {k: str(v) for k, v in chain.items()}, "rows": rows,
              "adverse_conditions": list(ADVERSE), "load_average": os.getloadavg()[0]}
    if "syn2real_ra" in rows:
        result["ablation"] = ablation_ordering(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "rosam" in checkpoints:
        cfg = row_config(protocol, "rosam", [], chain, args.quick)
        result["panel"] = str(make_panel(cfg, chain, checkpoints["rosam"], out / f"{stem}_panel.png",
                                         f"RoSAMDepth ({'quick' if args.quick else 'protocol'}): "
                                         "image, masks, teacher, student, M_out, W_rel").relative_to(REPO))
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    if "ablation" in result:
        (out / f"{stem}.md").write_text(to_markdown(result))
    print(f"wrote {out / stem}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
