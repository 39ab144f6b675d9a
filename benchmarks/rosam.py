"""RoSAMDepth on the world under benchmarks/protocol.yaml: Syn2Real-RA, each RoSAMDepth component, the full model
with felzenszwalb masks and with coverage-matched ORACLE masks (the world's object ids, sky as one more region),
second seeds of the rows that decide the claim, per condition and adverse mean; AROM's flagged fraction on the
clear test frames with the previous and the fixed threshold; a qualitative panel (image, masks, teacher,
student, M_out, W_rel) for a night and a rain frame.

    .venv/bin/python benchmarks/rosam.py                      # full protocol → docs/results/rosam.{json,md}
    .venv/bin/python benchmarks/rosam.py --rows syn2real_ra,rosam   # a subset of the rows
    .venv/bin/python benchmarks/rosam.py --quick              # tiny smoke version (runs/bench_quick)
                                                              # → docs/results/rosam_quick.{json,md}

Every run comes from the one run registry (robustdepth.bench.protocol, ``runs/bench/<key>``), shared with the
other tables. Chain (docs/methods.md § Syn2Real-RA, § RoSAMDepth): Φ_day = the protocol's cached day-clear
Monodepth2 teacher (``teacher``); Φ_syn = the ``md4all_dd`` row (Syn2Real's SA stage in its depth-distillation
form); every row below is an RA student initialised from Φ_syn, labelled by Φ_syn with W_cst from Φ_day, with
the day-histogram KL prior of Φ_day (``runs/bench/day_histograms/teacher.json``). All rows share seed (the
``*_seed43`` rows excepted), step budget, batch and learning rate (the protocol's ``student.lr``). The
felzenszwalb rows read the shared mask cache ``runs/bench/masks_felzenszwalb``.

Privileges of the world protocol, stated in the table: the world's training split is clear, the "real
adverse" frames are online-degraded copies, so the masks are segmented on the CLEAR render of the frame the
student sees degraded, and ORE's photometric error uses the clear target and source frames (on real adverse
data both would be the adverse frame itself). Cost on a fresh runs root: 11 student runs of the protocol's
budget (each ≈ one syn2real_ra row) plus the teacher and Φ_syn when not cached; everything is cached and resumable.

Run it from the repository root: run folders and the world are found relative to the working directory
(runs/bench*, data/world), the same paths every table and ``robustdepth bench`` record and share.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustdepth.bench.protocol import (
    ADVERSE,
    TEACHER,
    day_histogram,
    evaluate_run,
    felzenszwalb_mask_cache,
    method_row,
    protocol_flag,
    protocol_label,
    row_config,
    row_inputs,
    rows_to_markdown,
    run_row,
    runs_root_for,
    seed_noise,
    table_protocol,
)
from robustdepth.bench.script import run_script
from robustdepth.data.base import color_key

REPO = Path(__file__).resolve().parents[1]
# Registry keys of the table's rows (felzenszwalb rows read the shared cache; rosam_world_masks the world's ids
# with the sky as a region, the same full coverage as felzenszwalb)
TABLE_ROWS = ("syn2real_ra", "rosam_ore", "rosam_src", "rosam_arom", "rosam_arom_rgl", "rosam_arom_rgl_ore", "rosam",
        "rosam_world_masks", "syn2real_ra_seed43", "rosam_seed43", "rosam_world_masks_seed43")
OPTIONAL_ROWS = ("rosam_world_masks_sky_void",)  # only with --rows: the oracle with less coverage (sky void)
SEED_PAIRS = (("syn2real_ra", "syn2real_ra_seed43"), ("rosam", "rosam_seed43"),
              ("rosam_world_masks", "rosam_world_masks_seed43"))
PAPER_ORDER = ("rosam_ore", "rosam_src", "rosam_arom", "rosam_arom_rgl", "rosam_arom_rgl_ore", "rosam")
# The paper's ablation table (nuScenes night AbsRel). It has no Syn2Real row, and its full model (0.1667) is not
# the single-frame headline (0.1742): the settings differ, so only the ORDER of these rows is comparable.
PAPER_ABLATION_NIGHT_ABSREL = {"rosam_ore": 0.1734, "rosam_src": 0.1725, "rosam_arom": 0.1711,
                               "rosam_arom_rgl": 0.1699, "rosam_arom_rgl_ore": 0.1673, "rosam": 0.1667}
# The single-frame headline table (nuScenes night AbsRel): the one gain over Syn2Real the paper reports.
PAPER_SINGLE_FRAME_NIGHT_ABSREL = {"syn2real_ra": 0.1792, "rosam": 0.1742}
CHECKS_BEGIN, CHECKS_END = "<!-- BEGIN rosam_checks -->", "<!-- END rosam_checks -->"


def ablation_ordering(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Gain of each ablation row over Syn2Real-RA in adverse-mean AbsRel, ordered; agreement with the paper."""
    base = rows["syn2real_ra"]["adverse_mean"]["abs_rel"]
    gains = {n: base - rows[n]["adverse_mean"]["abs_rel"] for n in PAPER_ORDER if n in rows}
    observed = sorted(gains, key=lambda n: gains[n])
    names = [n for n in PAPER_ORDER if n in gains]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    concordant = sum(gains[a] < gains[b] for a, b in pairs)
    single = PAPER_SINGLE_FRAME_NIGHT_ABSREL
    return {"gain_adverse_abs_rel": gains, "observed_order": observed, "paper_order": names,
            "concordant_pairs": f"{concordant}/{len(pairs)}",
            "paper_ablation_night_abs_rel": {n: PAPER_ABLATION_NIGHT_ABSREL[n] for n in names},
            "paper_single_frame_gain_night_abs_rel": single["syn2real_ra"] - single["rosam"]}


def seed_pairs(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """|seed 42 − seed 43| of each row trained twice (adverse mean and clear AbsRel), and the two-seed means."""
    out = {}
    for a, b in SEED_PAIRS:
        if a in rows and b in rows:
            adv = [rows[k]["adverse_mean"]["abs_rel"] for k in (a, b)]
            clear = [rows[k]["clear"]["abs_rel"] for k in (a, b)]
            out[a] = {"adverse_abs_rel_diff": abs(adv[0] - adv[1]), "clear_abs_rel_diff": abs(clear[0] - clear[1]),
                      "adverse_abs_rel_mean": sum(adv) / 2, "clear_abs_rel_mean": sum(clear) / 2}
    return out


# ------------------------------------------------------------------------------- AROM on clear test frames


@torch.no_grad()
def arom_on_clear_test_frames(cfg: Any, teacher_ckpt: Path, max_frames: int = 0) -> dict[str, Any]:
    """AROM's flagged fraction (M_out < 0.5 over region pixels) on the clear test frames, previous vs fixed
    threshold, with Φ_syn as the teacher (what training uses) and with the GT depth (a correct teacher: every
    flag is a false positive); masks = felzenszwalb on the frame itself (what a clear frame would get)."""
    from robustdepth.data import build_items
    from robustdepth.data.base import FrameDataset
    from robustdepth.networks import disp_to_depth
    from robustdepth.providers.masks import build_segmenter, nearest_resize
    from robustdepth.providers.rosam import adaptive_outlier_mask, region_index
    from robustdepth.providers.teacher import load_frozen

    settings = {"previous (τ0 + λσ, λ 1, no σ floor)": {"lam": 1.0, "threshold_units": "disparity",
                                                        "sigma_floor": 0.0},
                "fixed (τ0 + λσ/μ, config defaults)": {"lam": float(cfg.providers.rosam.lam),
                                                        "threshold_units": str(cfg.providers.rosam.threshold_units),
                                                        "sigma_floor": float(cfg.providers.rosam.sigma_floor)}}
    cfg.data.train_conditions = ["clear"]
    items = build_items(cfg, cfg.eval.split, train=True)[: max_frames or None]
    ds = FrameDataset(items, cfg.data.height, cfg.data.width, frame_ids=[0])
    teacher, _, tcfg = load_frozen(teacher_ckpt)
    segment = build_segmenter(cfg.providers.masks)
    rp = cfg.providers.rosam
    fractions: dict[str, list[float]] = {}
    for i, item in enumerate(items):
        image = ds[i][color_key(0)][None]
        rgb = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        labels = torch.from_numpy(segment(rgb))[None]
        gt = nearest_resize(np.asarray(item.sequence.depth_gt(item.index, "clear"), dtype=np.float64),
                            int(cfg.data.height), int(cfg.data.width))
        valid = torch.from_numpy((gt > 0.1) & (gt < 80) & np.isfinite(gt))
        index = region_index(torch.where(valid[None], labels, torch.zeros_like(labels)), int(rp.min_region_pixels))
        teachers = {"Φ_syn": disp_to_depth(teacher(image).disp[0], tcfg.model.min_depth, tcfg.model.max_depth)[0],
                    "GT depth": torch.from_numpy(np.where(valid.numpy(), 1.0 / np.where(valid.numpy(), gt, 1.0),
                                                          0.0))[None, None].float()}
        for tname, d_t in teachers.items():
            for sname, s in settings.items():
                m = adaptive_outlier_mask(d_t, index, float(rp.tau0), kappa=float(rp.kappa),
                                          sigma_eps=float(rp.sigma_eps), **s).m_out
                sel = index.valid[:, None]
                fractions.setdefault(f"{tname} / {sname}", []).append(float((m[sel] < 0.5).float().mean()))
    return {k: {"flagged_mean": float(np.mean(v)), "flagged_max": float(np.max(v)), "frames": len(v)}
            for k, v in fractions.items()}


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
    return {"clean": clean, "adverse": adverse[color_key(0)], "name": f"{pick.sequence.name}#{pick.index}"}


@torch.no_grad()
def make_panel(cfg: Any, chain: dict[str, Path], student: Path, out: Path, title: str) -> Path:
    """Rows = night, rain; columns = adverse image, masks, teacher d_t, student d_s, M_out, W_rel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustdepth.geometry import Camera, Pose
    from robustdepth.networks import disp_to_depth, relative_pose
    from robustdepth.providers.masks import build_segmenter
    from robustdepth.providers.rosam import (
        adaptive_outlier_mask,
        min_photometric_error,
        object_reliability,
        region_index,
    )
    from robustdepth.providers.teacher import load_frozen

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
        rgb = (clean[color_key(0)].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        masks = torch.from_numpy(segment(rgb))[None]
        d_t = disp_to_depth(teacher(image).disp[0], tcfg.model.min_depth, tcfg.model.max_depth)[0]
        d_s = disp_to_depth(student_net(image).disp[0], scfg.model.min_depth, scfg.model.max_depth)[0]
        index = region_index(masks, int(rp.min_region_pixels))
        arom = adaptive_outlier_mask(d_t, index, rp.tau0, rp.lam, rp.kappa, rp.sigma_eps, rp.sigma_floor,
                                     rp.threshold_units)
        target = clean[color_key(0)][None]
        poses = [Pose(relative_pose(day_pose, target, clean[color_key(s)][None], source_is_before=s < 0).matrix)
                 for s in (-1, 1)]
        pe = min_photometric_error(target, [clean[color_key(s)][None] for s in (-1, 1)], 1.0 / d_t, poses,
                                   Camera(clean["K"][None]), rp.ore_ssim_alpha)
        w_rel = object_reliability(pe, index, rp.ore_beta, rp.ore_eps)
        panels = [(f["adverse"].permute(1, 2, 0).numpy(), f"{condition}: {f['name']}", None),
                  (masks[0].numpy() % 20, f"felzenszwalb masks of the clear frame ({int(masks.max())})", "tab20"),
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
    note = (("Quick smoke run (tiny world, a few steps): numbers are NOT meaningful. " if result["quick"] else "")
            + f"Command: `{result['command']}`. Protocol: {result['protocol']} ({result['protocol_summary']}). "
            "Every row: the same Φ_syn init (the md4all_dd row), "
            f"seed {result['seed']} (`*_seed43`: 43), {result['student_steps']} steps, batch {result['batch_size']}, "
            f"lr {result['lr']:g}. rosam = full model with weight-free felzenszwalb masks; rosam_world_masks = "
            "ORACLE masks (the world's object ids, sky as one more region: the same full coverage as felzenszwalb). "
            "Privileges (world protocol): masks are segmented on the clear render of each training frame while the "
            "student sees an online-degraded copy, and ORE's photometric error uses the clear target and source "
            "frames; on real adverse data both would come from the adverse frame itself.")
    lines = [rows_to_markdown(result["rows"], "RoSAMDepth on the world", note), "## Ablation ordering", "",
             "Gain = Syn2Real-RA adverse AbsRel − row adverse AbsRel (positive = better). The paper's ablation table "
             "(nuScenes night) has no Syn2Real row and another setting than its single-frame headline, so only its "
             "ORDER is compared; its one gain over Syn2Real is the single-frame full model, "
             f"{o['paper_single_frame_gain_night_abs_rel']:+.4f} (0.1792 → 0.1742).", "",
             "| row | gain (ours, adverse mean) | paper ablation AbsRel (nuScenes night) |", "|---|---:|---:|"]
    for n in o["paper_order"]:
        lines.append(f"| {n} | {o['gain_adverse_abs_rel'][n]:+.4f} | {o['paper_ablation_night_abs_rel'][n]:.4f} |")
    lines += ["", f"Paper order (increasing gain): {' < '.join(o['paper_order'])}.",
              f"Observed order: {' < '.join(o['observed_order'])} ({o['concordant_pairs']} pairs agree).", ""]
    arom = result.get("arom_clear_test")
    if arom:
        lines += ["## AROM on the clear test frames", "",
                  "Flagged = M_out < 0.5 over region pixels (felzenszwalb masks of the frame). With the GT depth as "
                  "the teacher every flag is a false positive; with Φ_syn part of them are its real errors.", "",
                  "| teacher / threshold | flagged (mean) | worst frame | frames |", "|---|---:|---:|---:|"]
        for name, r in arom.items():
            lines.append(f"| {name} | {100 * r['flagged_mean']:.2f} % | {100 * r['flagged_max']:.2f} % | "
                         f"{r['frames']} |")
        lines.append("")
    lines += reading(result)
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> list[str]:
    """What the table can and cannot tell, against the protocol's measured seed noise."""
    noise, rows, gains = result.get("seed_noise"), result["rows"], result["ablation"]["gain_adverse_abs_rel"]
    pairs = result.get("seed_pairs") or {}
    if (not noise and not pairs) or "syn2real_ra" not in rows or result["quick"]:
        return []
    if noise:
        adv, clear = noise["adverse_abs_rel"], noise["clear_abs_rel"]
    else:  # the md4all_dd pair is not trained: the noise is the largest difference of this table's own pairs
        adv = max(p["adverse_abs_rel_diff"] for p in pairs.values())
        clear = max(p["clear_abs_rel_diff"] for p in pairs.values())
    above = [n for n, g in gains.items() if abs(g) > adv]
    base_clear = rows["syn2real_ra"]["clear"]["abs_rel"]
    clear_cost = {n: rows[n]["clear"]["abs_rel"] - base_clear for n in gains}
    worst = max(clear_cost, key=lambda n: clear_cost[n])
    lines = ["## Reading the table", ""]
    if noise:
        lines.append(f"- Seed noise of this protocol ({' vs '.join(noise['rows'])}, same run with another seed): "
                     f"{adv:.4f} adverse-mean AbsRel, {clear:.4f} clear AbsRel.")
    for name, p in pairs.items():
        lines.append(f"- {name} trained with seeds 42 and 43: adverse AbsRel differs by {p['adverse_abs_rel_diff']:.4f}"
                     f", clear by {p['clear_abs_rel_diff']:.4f} (two-seed means {p['adverse_abs_rel_mean']:.4f} / "
                     f"{p['clear_abs_rel_mean']:.4f}).")
    if "syn2real_ra" in pairs and "rosam" in pairs:
        adv = max([adv, *(p["adverse_abs_rel_diff"] for p in pairs.values())])  # the largest noise seen
        claim = pairs["syn2real_ra"]["adverse_abs_rel_mean"] - pairs["rosam"]["adverse_abs_rel_mean"]
        lines.append(f"- The claim (RoSAMDepth better than Syn2Real-RA in adverse weather), two-seed means: "
                     f"{claim:+.4f} adverse AbsRel, {'beyond' if abs(claim) > adv else 'within'} the largest seed "
                     f"difference ({adv:.4f}).")
    lines += [
            f"- {len(above)} of {len(gains)} ablation gains over Syn2Real-RA exceed the adverse noise"
            + (f" ({', '.join(above)})" if above else "") + f"; the largest is {max(gains.values()):+.4f}. "
            + ("The ordering of the ablation rows is therefore not resolved at this budget: the pairs that agree "
               f"with the paper's order ({result['ablation']['concordant_pairs']}; a random order gives half on "
               "average) neither confirm nor refute it." if len(above) < len(gains) else
               "Every gain is above the noise, so the observed order is a measurement."),
            f"- Clear-weather cost over Syn2Real-RA: up to {clear_cost[worst]:+.4f} ({worst}), "
            f"{'beyond' if clear_cost[worst] > clear else 'within'} the clear noise."]
    if "rosam_world_masks" in rows and "rosam" in rows:
        oracle = rows["rosam_world_masks"]["adverse_mean"]["abs_rel"] - rows["rosam"]["adverse_mean"]["abs_rel"]
        lines.append(f"- Coverage-matched oracle masks (the world's object ids, sky a region) against felzenszwalb: "
                     f"{oracle:+.4f} adverse-mean AbsRel, {'within' if abs(oracle) <= adv else 'beyond'} the noise.")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, a few steps (smoke test)")
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--runs", default=None,
                        help="runs root, relative to the repo root (default runs/bench, quick: runs/bench_quick)")
    parser.add_argument("--rows", default=None,
                        help=f"comma-separated row keys (default: {','.join(TABLE_ROWS)}; "
                             f"also: {','.join(OPTIONAL_ROWS)})")
    parser.add_argument("--arom-frames", type=int, default=0, help="clear test frames for the AROM check (0 = all)")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    wanted = [n.strip() for n in args.rows.split(",") if n.strip()] if args.rows else list(TABLE_ROWS)
    unknown = [n for n in wanted if n not in (*TABLE_ROWS, *OPTIONAL_ROWS)]
    if unknown:
        raise SystemExit(f"unknown row(s) {unknown}; rows: {[*TABLE_ROWS, *OPTIONAL_ROWS]}")

    protocol = table_protocol(args.protocol, args.quick)
    out = Path(args.out).resolve()
    runs = runs_root_for(protocol, args.runs)
    done: dict[str, tuple[Path, float | None]] = {}
    day = run_row(protocol, TEACHER, runs, done)[0]  # Φ_day: the shared cached day-clear teacher
    chain = {"day": day, "syn": run_row(protocol, "md4all_dd", runs, done)[0],
             "histogram": day_histogram(day, runs), "masks": felzenszwalb_mask_cache(protocol, runs)}

    rows: dict[str, dict[str, Any]] = {}
    checkpoints: dict[str, Path] = {}
    for name in wanted:
        last, s_per_step = run_row(protocol, name, runs, done)
        checkpoints[name] = last
        rows[name] = method_row(evaluate_run(protocol, last), s_per_step)
        print(f"{name}: adverse AbsRel {rows[name]['adverse_mean']['abs_rel']:.4f}", flush=True)

    stem = "rosam_quick" if args.quick else "rosam"
    command = ("python benchmarks/rosam.py" + (" --quick" if args.quick else "")
               + protocol_flag(args.protocol, REPO)
               + (f" --rows {args.rows}" if args.rows else ""))
    result = {"quick": args.quick, "command": command,
              "protocol": protocol_label(args.protocol, REPO), "protocol_summary": protocol.summary(),
              "runs_root": str(runs),
              "seed": protocol.seed, "student_steps": protocol.student_steps,
              "batch_size": protocol.student_batch_size, "lr": protocol.student_lr, "world": protocol.world_preset,
              "chain": {k: str(v) for k, v in chain.items()}, "rows": rows,
              "adverse_conditions": list(ADVERSE), "load_average": os.getloadavg()[0],
              "seed_noise": None if args.quick else seed_noise(protocol, runs), "seed_pairs": seed_pairs(rows)}
    if "syn2real_ra" in rows:
        result["ablation"] = ablation_ordering(rows)
    out.mkdir(parents=True, exist_ok=True)
    arom_cfg = row_config(protocol, "rosam", **row_inputs(protocol, "rosam", runs, done))
    result["arom_clear_test"] = arom_on_clear_test_frames(arom_cfg, chain["syn"], 4 if args.quick else args.arom_frames)
    if "rosam" in checkpoints:
        cfg = row_config(protocol, "rosam", **row_inputs(protocol, "rosam", runs, done))
        panel = make_panel(cfg, chain, checkpoints["rosam"], out / f"{stem}_panel.png",
                           f"RoSAMDepth ({'quick' if args.quick else 'protocol'}): "
                           "image, masks, teacher, student, M_out, W_rel")
        result["panel"] = str(panel.relative_to(REPO)) if panel.is_relative_to(REPO) else str(panel)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    if "ablation" in result:
        write_keeping_checks(out / f"{stem}.md", to_markdown(result))
    print(f"wrote {out / stem}.json/.md")
    return 0


def write_keeping_checks(path: Path, text: str) -> None:
    """Write the table, keeping the section benchmarks/rosam_checks.py maintains in the same file."""
    old = path.read_text() if path.is_file() else ""
    if CHECKS_BEGIN in old and CHECKS_END in old:
        section = CHECKS_BEGIN + old.split(CHECKS_BEGIN, 1)[1].split(CHECKS_END, 1)[0] + CHECKS_END
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(run_script(main))
