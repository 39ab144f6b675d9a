"""Real KITTI video: does pretraining on the embedded world help self-supervised training on real frames?

    .venv/bin/python benchmarks/real_kitti.py [--steps 1000] [--seeds 0 1] [--jobs 2] [--overlay fast]
    .venv/bin/python benchmarks/real_kitti.py --quick          # smoke run of a few steps (numbers meaningless)

Four Monodepth2 models per seed, each with the step budget N (the control 2N) on its own training data:

* ``real``        — recipe ``kitti_real_monodepth2`` from random initialisation: N steps on the 324 real
  KITTI training targets (raw drive 2011_09_26_drive_0095 + the demo_slam frames, ../shared/realdata);
* ``world``       — recipe ``monodepth2`` on the embedded world's clear frames: N steps, never sees a real
  frame (zero-shot on real);
* ``world→real``  — recipe ``kitti_real_finetune`` initialised from the same seed's ``world`` checkpoint
  (depth and pose networks), then N steps on the real frames. It has seen N world steps on top of the
  real-only budget: the question is whether those help, at equal real-data budget;
* ``real_2x``     — the control for that question's boring answer, *more steps*: ``real`` trained for 2N steps,
  as many as world → real took in all.

All at 96×320, batch 8, lr 1e-4 decayed ×0.1 after 3/4 of each run's steps (Monodepth2's schedule shape), through
the ``fast`` overlay by default (bf16 autocast + channels_last + fused Adam, the same for every arm; ``--overlay
""`` trains fp32). ``--jobs 2`` trains the seeds in two processes at once, one thread each (a 2-core CPU's best).
Scores: depth on the KITTI odometry sequence 04 LiDAR GT (11 frames with scans, projected as Monodepth2's
``generate_depth_map`` through Tr and P2; 0.1–80 m, Garg crop, per-image median scaling, cv2-bilinear
disparity resize: ``kitti_eigen`` with its GT floor raised to 0.1 m) and pose ATE on the same sequence
(Monodepth2's ``evaluate_pose.py``: 50 snippets of 5 frames, per-snippet scale alignment), next to the
floors: one constant depth (= per-image GT median after scaling) and one constant straight motion. Seq 04
is disjoint from every training frame (recorded 2011-09-30; the training frames are 2011-09-26). Each
comparison (world → real vs real only, vs the 2N-step control, world only vs real only) is a paired difference
with a 95 % bootstrap interval over seeds × test frames (AbsRel) and seeds × snippets (ATE), with its verdict
(robustdepth.bench.stats.paired_units).

Writes docs/results/real_kitti.{json,md,png} (``--quick``: ``real_kitti_quick.*``, runs in
runs/real_kitti_quick). Resumable: every run continues from its last checkpoint, finished runs and their
scores (``scores.json`` in each run folder) are reused.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.bench.methods import worker_pool
from robustdepth.bench.script import run_script
from robustdepth.bench.stats import paired_units
from robustdepth.checkpoint import load_checkpoint
from robustdepth.configure import apply_overrides, load_config
from robustdepth.data import build_items
from robustdepth.evaluation import get_protocol
from robustdepth.evaluation.pose import constant_motion, snippet_ates
from robustdepth.training.stages import ensure_recipe_run

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
ODOMETRY = REALDATA / "kitti_odometry_04_lidar"
ARMS = ("real", "real_2x", "world", "world_to_real")
LABELS = {"real": "real only", "real_2x": "real only, 2N steps (control)", "world": "world only (zero-shot)",
          "world_to_real": "world → real"}
RECIPES = {"real": "kitti_real_monodepth2", "real_2x": "kitti_real_monodepth2", "world": "monodepth2",
           "world_to_real": "kitti_real_finetune"}
STEP_FACTOR = {"real_2x": 2}  # every other arm trains the budget N
# (method, baseline, what the difference measures)
COMPARISONS = (
    ("world_to_real", "real", "world pretraining at an equal real-data budget"),
    ("world_to_real", "real_2x", "world pretraining vs as many steps on real frames (control: more steps)"),
    ("world", "real", "zero-shot world training vs training on the real frames"),
)
METRICS = ("abs_rel", "sq_rel", "rmse", "a1")
PROTOCOL = get_protocol("kitti_odometry_lidar")
# Real frames of the qualitative panel: (label, path, LiDAR frame of seq 04 or None).
PANEL = (
    ("raw 0095 #134", REALDATA / "kitti_raw_2011_09_26_drive_0095/2011_09_26/2011_09_26_drive_0095_sync/image_02/data"
     / "0000000134.jpg", None),
    ("demo_slam #30", REALDATA / "kitti_raw_seq_demo_slam/input/0000000030.png", None),
    ("odometry 04 #25 (held out)", ODOMETRY / "sequences/04/image_2/000025.jpg", 25),
)


def odometry_overrides(workers: int) -> list[str]:
    return ["data.dataset=kitti_odometry", f"data.root={ODOMETRY}", f"data.num_workers={workers}"]


def arm_steps(arm: str, steps: int) -> int:
    return steps * STEP_FACTOR.get(arm, 1)


def arm_recipe(arm: str, overlay: str) -> str:
    """The arm's recipe with the overlay every arm shares (``acdepth+fast`` style), or alone."""
    return f"{RECIPES[arm]}+{overlay}" if overlay else RECIPES[arm]


def arm_overrides(arm: str, seed: int, args: argparse.Namespace, world_ckpt: Path | None) -> list[str]:
    """Every override of one run: shared mechanics, its data, and the lr decay at 3/4 of its steps."""
    steps = arm_steps(arm, args.steps)
    common = ["data.height=96", "data.width=320", f"optim.batch_size={args.batch_size}", f"optim.lr={args.lr}",
              f"train.seed={seed}", "train.progress=false", f"data.num_workers={args.workers}",
              f"train.ckpt_every={max(1, steps // 4)}"]
    if arm == "world":
        common += [f"data.root={args.world_root}"]
    if arm == "world_to_real":
        common += [f"model.init_checkpoint={world_ckpt}"]
    cfg = load_config(arm_recipe(arm, args.overlay), common)
    steps_per_epoch = max(1, len(build_items(cfg, cfg.data.train_split, train=True)) // args.batch_size)
    return [*common, f"optim.decay_every_epochs={0.75 * steps / steps_per_epoch:.6g}"]


def train_seed(seed: int, args: argparse.Namespace, runs_root: Path) -> dict[str, tuple[Path, float | None]]:
    """Every arm of one seed, in order (world before world → real: it initialises it); {arm: (checkpoint,
    s/step)}. Finished runs are reused, interrupted ones resume from their last checkpoint."""
    out: dict[str, tuple[Path, float | None]] = {}
    for arm in ARMS:
        world_ckpt = out["world"][0] if "world" in out else None
        outcome = ensure_recipe_run(arm_recipe(arm, args.overlay), runs_root / f"{arm}_s{seed}",
                                    arm_overrides(arm, seed, args, world_ckpt), arm_steps(arm, args.steps))
        out[arm] = (outcome.checkpoint, outcome.s_per_step)
        print(f"{arm} seed {seed}: {outcome.action} ({arm_steps(arm, args.steps)} steps)", flush=True)
    return out


def train_all(args: argparse.Namespace, runs_root: Path) -> dict[int, dict[str, tuple[Path, float | None]]]:
    """Every seed's arms; with ``--jobs`` > 1 the seeds train at once in the methods table's worker pool (spawned
    processes, the machine's cores shared evenly between them: one thread each on a 2-core CPU)."""
    if args.jobs <= 1 or len(args.seeds) == 1:
        return {seed: train_seed(seed, args, runs_root) for seed in args.seeds}
    with worker_pool(min(args.jobs, len(args.seeds))) as pool:
        futures = {seed: pool.submit(train_seed, seed, args, runs_root) for seed in args.seeds}
        return {seed: future.result() for seed, future in futures.items()}


def score_run(checkpoint: Path, workers: int) -> dict[str, Any]:
    """Depth metrics on the seq-04 LiDAR frames and pose ATE on seq 04 (cached next to the run)."""
    from robustdepth.evaluation.pose_cli import evaluate_pose_checkpoint
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.inference import DepthModel

    cache = checkpoint.parent.parent / "scores.json"
    step = int(load_checkpoint(checkpoint)["step"])
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("step") == step and "frame_abs_rel" in stored:
            return stored
    model = DepthModel.from_checkpoint(checkpoint, device="cpu")
    cfg = apply_overrides(model.config, odometry_overrides(workers))
    evaluator = evaluate_model(model, cfg, PROTOCOL, progress=False)
    summary = evaluator.summary()
    depth = summary["all"]
    result = evaluate_pose_checkpoint(checkpoint, odometry_overrides(workers), device="cpu")
    pose = result.summary()
    scores = {"step": step, **{m: float(depth[m]) for m in METRICS}, "frames": int(summary["counts"]["all"]),
              "ate_mean": pose["ate_mean"], "ate_std": pose["ate_std"], "snippets": pose["snippets"],
              # per test item, for the paired intervals: AbsRel per LiDAR frame, ATE per 5-frame snippet
              "frame_abs_rel": {r["name"]: float(r["abs_rel"]) for r in evaluator.per_frame()},
              "snippet_ate": [float(a) for name in sorted(result.ates) for a in result.ates[name]]}
    cache.write_text(json.dumps(scores, indent=2))
    return scores


def floors(workers: int) -> dict[str, Any]:
    """The constant-depth predictor and the constant straight-motion pose on the same frames."""
    from robustdepth.data.kitti_odometry import read_poses
    from robustdepth.evaluation.runner import constant_median_baseline

    cfg = load_config("monodepth2", odometry_overrides(workers))
    depth = constant_median_baseline(cfg, PROTOCOL).summary()["all"]
    gt = read_poses(ODOMETRY / "poses" / "04.txt")
    ates = snippet_ates(constant_motion(len(gt) - 1), gt)
    return {**{m: float(depth[m]) for m in METRICS}, "ate_mean": float(ates.mean()), "ate_std": float(ates.std())}


def aggregate(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean and (population) std over seeds of every score, per arm."""
    out = {}
    for arm, by_seed in runs.items():
        out[arm] = {k: {"mean": float(np.mean([r[k] for r in by_seed.values()])),
                        "std": float(np.std([r[k] for r in by_seed.values()]))} for k in (*METRICS, "ate_mean")}
        timed = [r["s_per_step"] for r in by_seed.values() if r.get("s_per_step") is not None]
        out[arm]["s_per_step"] = {"mean": float(np.mean(timed)) if timed else float("nan"),
                                  "std": float(np.std(timed)) if timed else float("nan")}
    return out


def unit_arrays(runs: dict[int, dict[str, Any]], seeds: list[int], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, frames) AbsRel over ``names`` (NaN where this arm lacks a frame) and (seeds, snippets) ATE."""
    depth = np.array([[runs[s]["frame_abs_rel"].get(n, np.nan) for n in names] for s in seeds])
    return depth, np.array([runs[s]["snippet_ate"] for s in seeds])


def comparisons(runs: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> list[dict[str, Any]]:
    """Each COMPARISONS pair: the paired AbsRel and ATE differences (method − baseline, same seed, same frame or
    snippet) with their 95 % bootstrap intervals over seeds × units and verdicts."""
    out = []
    for method, baseline, meaning in COMPARISONS:
        names = sorted({n for arm in (method, baseline) for s in seeds for n in runs[arm][s]["frame_abs_rel"]})
        (m_depth, m_ate), (b_depth, b_ate) = (unit_arrays(runs[a], seeds, names) for a in (method, baseline))
        out.append({"method": method, "baseline": baseline, "meaning": meaning,
                    "abs_rel": paired_units(m_depth, b_depth).as_dict(),
                    "ate": paired_units(m_ate, b_ate).as_dict()})
    return out


def effect_text(effect: dict[str, Any]) -> str:
    return f"{effect['mean']:+.4f} [{effect['low']:+.4f}, {effect['high']:+.4f}], {effect['verdict']}"


def verdict(compared: list[dict[str, Any]]) -> str:
    """One line per comparison, AbsRel and ATE differences with their intervals and verdicts."""
    return "\n".join(f"- {LABELS[c['method']]} − {LABELS[c['baseline']]} ({c['meaning']}): AbsRel "
                     f"{effect_text(c['abs_rel'])}; ATE (m) {effect_text(c['ate'])}." for c in compared)


def panel(ckpts: dict[str, Path], out: Path) -> None:
    """Real frames (rows) × [image, LiDAR GT where there is one, each arm's disparity]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustdepth.data.base import read_rgb
    from robustdepth.data.kitti_odometry import OdometrySequence
    from robustdepth.inference import DepthModel
    from robustdepth.visualize import colorize_disparity

    models = {arm: DepthModel.from_checkpoint(path, device="cpu") for arm, path in ckpts.items()}
    rows = [row for row in PANEL if row[1].is_file()]
    cols = 2 + len(models)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.2 * cols, 1.25 * len(rows) + 0.6), squeeze=False)
    for r, (label, path, lidar) in enumerate(rows):
        image = np.asarray(read_rgb(path))
        axes[r, 0].imshow(image)
        axes[r, 0].set_ylabel(label, fontsize=7)
        if lidar is not None:
            gt = OdometrySequence(ODOMETRY, "04").depth_gt(lidar, "clear")
            ys, xs = np.nonzero(gt)
            axes[r, 1].imshow(image)
            axes[r, 1].scatter(xs, ys, c=1.0 / gt[ys, xs], s=0.2, cmap="magma")
        else:
            axes[r, 1].imshow(np.full_like(image, 235))
            axes[r, 1].text(image.shape[1] / 2, image.shape[0] / 2, "no LiDAR", ha="center", va="center", fontsize=8)
        for c, model in enumerate(models.values()):
            depth = model.infer(path)
            axes[r, 2 + c].imshow(colorize_disparity(1.0 / depth))
    for c, title in enumerate(["frame", "LiDAR GT", *(LABELS[a] for a in models)]):
        axes[0, c].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _shown(path: Path) -> str:
    """A path as the results files show it: relative to the repository when inside it."""
    return str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)


def fmt(stat: dict[str, float], digits: int = 4) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown(result: dict[str, Any], command: str, png_name: str) -> str:
    s, agg, floor = result["settings"], result["aggregate"], result["floors"]
    lines = [
        "# Real KITTI video: real only vs world only vs world → real", "",
        f"Command: `{command}` ({result['wall_minutes']:.1f} min wall on this machine for what this invocation "
        f"trained and scored; finished runs are reused). Seeds {s['seeds']}; N = {s['steps']} steps per model "
        f"(the control {2 * s['steps']}) at batch {s['batch_size']}, {s['height']}×{s['width']}, lr {s['lr']} (×0.1 "
        f"after 3/4 of each run's steps), {overlay_text(s.get('overlay', ''))}, from random initialisation (no "
        "ImageNet weights); world → real adds the same seed's world run as initialisation.",
        f"Real training frames: 324 targets of KITTI raw 2011_09_26 (drive 0095 + demo_slam). World: "
        f"`{s['world_root']}`. Depth: {result['protocol']['description']} {result['floors']['frames']} frames of "
        "odometry seq 04 (2011-09-30, never trained on). Pose: Monodepth2's ATE on 5-frame snippets with "
        "per-snippet scale alignment (metres, 50 snippets). Mean ± std over seeds.", "",
        "| model | AbsRel | SqRel | RMSE | δ1 | ATE (m) | s/step |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arm in ARMS:
        a = agg[arm]
        lines.append(f"| {LABELS[arm]} | {fmt(a['abs_rel'])} | {fmt(a['sq_rel'], 3)} | {fmt(a['rmse'], 3)} | "
                     f"{fmt(a['a1'], 3)} | {fmt(a['ate_mean'])} | {a['s_per_step']['mean']:.2f} |")
    lines.append(f"| constant depth / constant straight motion | {floor['abs_rel']:.4f} | {floor['sq_rel']:.3f} | "
                 f"{floor['rmse']:.3f} | {floor['a1']:.3f} | {floor['ate_mean']:.4f} | – |")
    lines += ["", "Per seed:", "", "| model | seed | AbsRel | δ1 | ATE (m) |", "|---|---:|---:|---:|---:|"]
    for arm in ARMS:
        for seed, r in result["runs"][arm].items():
            lines.append(f"| {LABELS[arm]} | {seed} | {r['abs_rel']:.4f} | {r['a1']:.3f} | {r['ate_mean']:.4f} |")
    lines += ["", "Does world pretraining help real training at this budget? Paired differences (same seed, same "
              "LiDAR frame or pose snippet), mean [95 % bootstrap interval over seeds × frames or snippets], "
              "lower is better for both:", "", result["verdict"], "",
              f"![Real frames: image, LiDAR GT, each model (seed {s['seeds'][0]})]({png_name})", ""]
    return "\n".join(lines)


def overlay_text(overlay: str) -> str:
    return f"every arm through the `{overlay}` overlay" if overlay else "fp32 (no overlay)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--workers", type=int, default=2, help="data loader workers")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once, each in its own process with "
                        "cores/jobs threads (2 on a 2-core CPU)")
    parser.add_argument("--overlay", default="fast", help="recipe overlay of every arm (fast = bf16 + channels_last "
                        "+ fused Adam; \"\" = fp32)")
    parser.add_argument("--world-root", default=str(REPO / "data" / "world" / "small"),
                        help="embedded world (robustdepth world generate --preset small --out data/world/small)")
    parser.add_argument("--runs-root", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 steps, batch 2 (numbers meaningless)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch_size, args.workers = 3, 2, 0
    if len(args.seeds) < 1 or args.steps < 1 or args.jobs < 1:
        parser.error("need at least one seed, one step and one job")
    if not (ODOMETRY / "poses" / "04.txt").is_file():
        raise SystemExit(f"error: {ODOMETRY} not found (the real KITTI data of ../shared/realdata)")
    if not Path(args.world_root).is_dir():
        raise SystemExit(f"error: world {args.world_root} not found: robustdepth world generate --preset small "
                         f"--out {args.world_root}")
    runs_root = args.runs_root or REPO / "runs" / ("real_kitti_quick" if args.quick else "real_kitti")
    stem = "real_kitti_quick" if args.quick else "real_kitti"
    t0 = time.perf_counter()
    trained = train_all(args, runs_root)
    runs: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in ARMS}
    ckpts: dict[str, dict[int, Path]] = {arm: {} for arm in ARMS}
    for seed in args.seeds:
        for arm in ARMS:
            ckpt, s_per_step = trained[seed][arm]
            ckpts[arm][seed] = ckpt
            runs[arm][seed] = {**score_run(ckpt, args.workers), "s_per_step": s_per_step}
            print(f"{arm} seed {seed}: AbsRel {runs[arm][seed]['abs_rel']:.4f}, "
                  f"ATE {runs[arm][seed]['ate_mean']:.4f}", flush=True)
    floor = {**floors(args.workers), "frames": runs["real"][args.seeds[0]]["frames"]}
    agg = aggregate(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    panel({arm: ckpts[arm][args.seeds[0]] for arm in ARMS}, args.out / f"{stem}.png")
    command = "python benchmarks/real_kitti.py" + (" --quick" if args.quick else
                                                   f" --steps {args.steps} --seeds {' '.join(map(str, args.seeds))}")
    command += f" --jobs {args.jobs}" if args.jobs > 1 else ""
    command += f" --overlay {shlex.quote(args.overlay)}" if args.overlay != "fast" else ""
    result = {
        "command": command,
        "settings": {"steps": args.steps, "seeds": args.seeds, "batch_size": args.batch_size, "lr": args.lr,
                     "height": 96, "width": 320, "world_root": _shown(Path(args.world_root)),
                     "runs_root": _shown(runs_root), "overlay": args.overlay, "jobs": args.jobs,
                     "recipes": RECIPES, "step_factor": STEP_FACTOR},
        "protocol": {"name": PROTOCOL.name, "description": PROTOCOL.description, "pose": "MD2 evaluate_pose ATE"},
        "runs": {arm: {str(seed): r for seed, r in by_seed.items()} for arm, by_seed in runs.items()},
        "aggregate": agg,
        "floors": floor,
        "comparisons": (compared := comparisons(runs, args.seeds)),
        "verdict": verdict(compared),
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(result, command, f"{stem}.png"))
    print(markdown(result, command, f"{stem}.png"))


if __name__ == "__main__":
    raise SystemExit(run_script(main))
