"""Cheap RoSAMDepth checks (seconds): AROM on a CORRECT teacher, the L_rgl σ-floor, and SAM duplicate suppression.

    .venv/bin/python benchmarks/rosam_checks.py          # → docs/results/rosam_checks.json + a section of rosam.md

* **AROM on a correct teacher.** The teacher is the exact inverse depth of (a) a constructed perspective road
  (an 8 m-wide lane and the ground beside it, 1.5 m camera height) with uniform objects on it (fronto-parallel
  cars, a slanted wall), exact and with 1 % multiplicative noise, and (b) the clear test frames of the
  embedded world (GT depth) with the world's object ids and with felzenszwalb masks. Whatever AROM flags there
  (M_out < 0.5) is a false positive. Rows: the paper's literal threshold τ = τ0 + λσ (σ in disparity units,
  λ = 1, no σ floor: the previous default) and the fixed one (τ = τ0 + λ·σ/μ, λ = 6, σ' = max(σ, 0.05·μ)),
  plus λ sweeps. Planted outliers (a cluster of 2× / 0.5× disparity inside each car) measure what is still
  caught (true positives).
* **σ-floor.** On the uniform cars with planted outliers and a student that copied the teacher (so L_rgl has
  something to pull): L_rgl's per-pixel gradient at the outliers and at the inliers, with the floor off
  and on.
* **SAM post-processing.** Three near-duplicate masks of a 960 px car (1–2 px shifts, one dilated), a
  neighbouring car and a background mask: regions and slivers of the partition without and with mask-IoU NMS
  and the minimum region size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustdepth.bench.script import run_script
from robustdepth.losses.rosam import region_contrast, regional_gaussian_likelihood
from robustdepth.providers.masks import partition_from_masks
from robustdepth.providers.rosam import adaptive_outlier_mask, region_index

REPO = Path(__file__).resolve().parents[1]
#: The previous default (the paper's literal τ0 + λσ with λ = 1, no σ floor) and the fixed one.
OLD = {"lam": 1.0, "threshold_units": "disparity", "sigma_floor": 0.0}
NEW = {"lam": 6.0, "threshold_units": "relative", "sigma_floor": 0.05}
BEGIN, END = "<!-- BEGIN rosam_checks -->", "<!-- END rosam_checks -->"


# ------------------------------------------------------------------------------------- constructed scenes


def road_scene(height: int = 192, width: int = 640, noise: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Depth and labels of a flat road seen from 1.5 m (f = 0.58·W, horizon at mid-height), with objects.

    Labels: 1 = lane (|X| < 4 m), 2 = ground beside it, 3.. = objects (cars: fronto-parallel 1.8×1.5 m boxes
    at 8, 14, 25 and 40 m; a wall slanting from 10 to 30 m on the right); sky and ground beyond 80 m = 0.
    ``noise`` multiplies the depth by (1 + noise·N(0, 1)) — a correct teacher with small pixel noise.
    """
    rng = np.random.default_rng(seed)
    f, cx, cy, cam_h = 0.58 * width, width / 2 - 0.5, height / 2 - 0.5, 1.5
    v, u = np.mgrid[0:height, 0:width].astype(float)
    below = v > cy + 0.5
    with np.errstate(divide="ignore"):
        z = np.where(below, f * cam_h / np.maximum(v - cy, 1e-9), np.inf)
    x = (u - cx) * z / f
    labels = np.where(below & (z <= 80), np.where(np.abs(x) < 4.0, 1, 2), 0)
    depth = np.where(labels > 0, z, 0.0)
    for i, (zc, xc) in enumerate(((8.0, -1.5), (14.0, 2.0), (25.0, -0.5), (40.0, 1.0))):
        ul, ur = cx + (xc - 0.9) * f / zc, cx + (xc + 0.9) * f / zc
        vt, vb = cy + (cam_h - 1.5) * f / zc, cy + cam_h * f / zc
        box = (u >= ul) & (u <= ur) & (v >= vt) & (v <= vb)
        labels, depth = np.where(box, 3 + i, labels), np.where(box, zc, depth)
    # a wall on the right, 3 m tall, running from 10 m to 30 m at X = 6 m: depth varies along the image row
    zw = 6.0 * f / np.maximum(u - cx, 1e-9)
    wall = (u > cx + 6.0 * f / 30.0) & (u < cx + 6.0 * f / 10.0) & (v >= cy + (cam_h - 3.0) * f / zw) & (
        v <= cy + cam_h * f / zw)
    labels, depth = np.where(wall, 7, labels), np.where(wall, zw, depth)
    if noise:
        depth = depth * (1 + noise * rng.standard_normal(depth.shape))
    return {"depth": depth, "labels": labels.astype(np.int64), "cars": (labels >= 3) & (labels <= 6),
            "road": labels == 1, "ground": labels == 2, "wall": labels == 7}


def plant_outliers(scene: dict[str, np.ndarray], factor: float, size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Disparity of the scene with a size×size cluster at ``factor``× disparity in the middle of each car."""
    disp = np.where(scene["labels"] > 0, 1.0 / np.where(scene["depth"] > 0, scene["depth"], 1.0), 0.0)
    planted = np.zeros_like(scene["cars"])
    for r in range(3, 7):
        rows, cols = np.nonzero(scene["labels"] == r)
        if rows.size < 4 * size * size:
            continue
        rc, cc = int(np.median(rows)), int(np.median(cols))
        planted[rc - size // 2: rc - size // 2 + size, cc - size // 2: cc - size // 2 + size] = True
    planted &= scene["cars"]
    return np.where(planted, disp * factor, disp), planted


def arom_maps(disp: np.ndarray, labels: np.ndarray, settings: dict[str, Any]) -> Any:
    d = torch.from_numpy(disp)[None, None].double()
    return adaptive_outlier_mask(d, region_index(torch.from_numpy(labels)[None], 4), **settings)


def flagged(m_out: torch.Tensor, where: np.ndarray) -> float:
    """Fraction of the pixels in ``where`` that AROM flags (M_out < 0.5)."""
    sel = torch.from_numpy(where)
    return float((m_out[0, 0][sel] < 0.5).double().mean()) if sel.any() else float("nan")


def rgl_pull(disp: np.ndarray, labels: np.ndarray, settings: dict[str, Any]) -> dict[str, float]:
    """Per-pixel |∂L_rgl/∂d_s| (× pixel count) for a student equal to the teacher: flagged vs inlier pixels."""
    arom = arom_maps(disp, labels, settings)
    d_s = torch.from_numpy(disp)[None, None].double().requires_grad_(True)
    regional_gaussian_likelihood(d_s, arom).backward()
    grad = d_s.grad[0, 0].abs() * disp.size
    out = arom.m_out[0, 0] < 0.5
    inl = (~out) & torch.from_numpy(labels > 0)
    return {"outlier_grad": float(grad[out].mean()) if out.any() else 0.0,
            "inlier_grad": float(grad[inl].mean()) if inl.any() else 0.0}


def constructed_rows() -> dict[str, Any]:
    """AROM false positives / true positives and the L_rgl pull on the constructed road scene."""
    rows: dict[str, Any] = {}
    settings = {"old (τ0 + λσ, λ 1, no floor)": OLD, "new (τ0 + λσ/μ, λ 6, floor 0.05)": NEW,
                **{f"relative, λ {lam:g}, floor 0.05": {**NEW, "lam": lam} for lam in (0.0, 2.0, 4.0, 8.0)},
                "relative, λ 6, no floor": {**NEW, "sigma_floor": 0.0},
                **{f"disparity, λ {lam:g}, no floor": {**OLD, "lam": lam} for lam in (3.0, 10.0)}}
    for name, s in settings.items():
        row: dict[str, Any] = {}
        for noise in (0.0, 0.01):
            scene = road_scene(noise=noise)
            disp = np.where(scene["labels"] > 0, 1.0 / np.where(scene["depth"] > 0, scene["depth"], 1.0), 0.0)
            m = arom_maps(disp, scene["labels"], s).m_out
            tag = "exact" if noise == 0 else "noise1%"
            for part in ("road", "ground", "cars", "wall"):
                row[f"fp_{part}_{tag}"] = flagged(m, scene[part])
            if noise == 0:
                road_flags = (m[0, 0] < 0.5).numpy() & scene["road"]
                row["fp_road_depth_range_m"] = ([float(scene["depth"][road_flags].min()),
                                                 float(scene["depth"][road_flags].max())]
                                                if road_flags.any() else None)
                row.update({f"rgl_{k}": v for k, v in rgl_pull(disp, scene["labels"], s).items()})
        for factor, size in ((2.0, 3), (0.5, 3), (1.3, 1)):
            scene = road_scene(noise=0.01)
            disp, planted = plant_outliers(scene, factor, size)
            m = arom_maps(disp, scene["labels"], s).m_out
            row[f"tp_planted_x{factor:g}_{size}px"] = flagged(m, planted)
        rows[name] = row
    return rows


def sigma_floor_rows() -> dict[str, Any]:
    """L_rgl on the uniform cars (0.2 % noise), student = teacher, σ floor off/on: (a) a correct teacher — whatever
    L_rgl pulls is noise; (b) one planted pixel at 2× disparity per car — the pull L_rgl should make."""
    out: dict[str, Any] = {}
    scene = road_scene(noise=0.002)
    labels = np.where(scene["cars"], scene["labels"], 0)  # cars only: the uniform objects
    for floor in (0.0, 0.01, 0.05, 0.1):
        s = {**NEW, "sigma_floor": floor}
        row: dict[str, Any] = {}
        for case, (factor, size) in (("correct", (1.0, 1)), ("planted", (2.0, 1))):
            disp, planted = plant_outliers(scene, factor, size)
            arom = arom_maps(disp, labels, s)
            d_s = torch.from_numpy(disp)[None, None].double().requires_grad_(True)
            loss = regional_gaussian_likelihood(d_s, arom)
            loss.backward()
            grad = d_s.grad[0, 0].abs().numpy() * disp.size
            inl = scene["cars"] & ~planted if case == "planted" else scene["cars"]
            row[f"{case}_loss"] = float(loss.detach())
            row[f"{case}_flagged_inliers"] = flagged(arom.m_out, inl)
            row[f"{case}_grad_inliers"] = float(grad[inl].mean())
            if case == "planted":
                row["planted_caught"] = flagged(arom.m_out, planted)
                row["planted_grad"] = float(grad[planted].mean())
        out[f"{floor:g}"] = row
    return out


# ------------------------------------------------------------------------------------------- the world


def world_rows(root: Path, frames: int, height: int, width: int) -> dict[str, Any] | None:
    """AROM on the clear test frames of the world with the GT depth as the teacher (old vs new settings)."""
    from omegaconf import OmegaConf
    from PIL import Image

    from robustdepth.data.world import world_sequences
    from robustdepth.providers.masks import MasksConfig, build_segmenter, nearest_resize, relabel

    if not (root / "world.json").is_file():
        return None
    segment = build_segmenter(OmegaConf.structured(MasksConfig(method="felzenszwalb")))
    counts: dict[str, dict[str, list[float]]] = {}
    used = 0
    for seq in world_sequences(root, "test"):
        for index in range(seq.num_frames):
            if used >= frames:
                break
            depth = nearest_resize(np.asarray(seq.depth_gt(index, "clear"), dtype=np.float64), height, width)
            valid = (depth > 0.1) & (depth < 80) & np.isfinite(depth)
            img = seq.load_image(index, "clear").resize((width, height), Image.Resampling.LANCZOS)
            masks = {"world ids": relabel(nearest_resize(np.asarray(seq.object_ids(index)), height, width)),
                     "felzenszwalb": segment(np.asarray(img, dtype=np.uint8))}
            disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
            for mname, labels in masks.items():
                src = src_at_chance(masks[mname])
                for key, value in src.items():
                    counts.setdefault(f"SRC {mname}", {}).setdefault(key, []).append(value)
                labels = np.where(valid, labels, 0)
                for sname, s in (("old", OLD), ("new", NEW)):
                    m = arom_maps(disp, labels, s).m_out
                    counts.setdefault(f"{mname} / {sname}", {}).setdefault("fp", []).append(flagged(m, labels > 0))
            used += 1
    return {k: ({"flagged_mean": float(np.mean(v["fp"])), "flagged_max": float(np.max(v["fp"])), "frames": used}
                if "fp" in v else {key: float(np.mean(vals)) for key, vals in v.items()})
            for k, v in counts.items()}


def src_at_chance(labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Regions of a partition and SRC on random (untrained) features: InfoNCE ≈ log R, normalised ≈ 1."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.from_numpy(labels)[None]
    feats = torch.randn(1, 64, *labels.shape, generator=g)
    out = {"regions": float(region_index(lab, 4).num_regions)}
    for name, norm in (("plain", False), ("normalised", True)):
        out[name] = float(region_contrast(feats, lab, torch.Generator().manual_seed(seed), temperature=0.1,
                                          max_pixels=4096, normalise_by_regions=norm))
    return out


# ------------------------------------------------------------------------------------------------ SAM


def sam_rows() -> dict[str, Any]:
    """Partition of constructed SAM-like masks: three near-duplicates of a 960 px car, a second car, road."""
    h, w = 64, 96
    car = np.zeros((h, w), bool)
    car[20:44, 10:50] = True  # 24×40 = 960 px
    dup1 = np.roll(car, 2, axis=1)
    dup2 = np.roll(car, (1, -2), axis=(0, 1))
    dup3 = car.copy()
    dup3[19:45, 9:51] = True  # dilated by one pixel
    other = np.zeros_like(car)
    other[25:40, 60:85] = True
    road = np.zeros_like(car)
    road[40:, :] = True
    masks = [car, dup1, dup2, dup3, other, road]
    scores = [0.97, 0.95, 0.93, 0.91, 0.96, 0.99]
    out: dict[str, Any] = {}
    for name, kw in (("largest-wins only", {}), ("+ NMS 0.7", {"nms_iou": 0.7}),
                     ("+ NMS 0.7 + min 20 px", {"nms_iou": 0.7, "min_region_pixels": 20})):
        labels = partition_from_masks(masks, scores=scores, **kw)
        sizes = np.bincount(labels.ravel())[1:]
        thin = []
        for r in range(1, labels.max() + 1):
            rows, cols = np.nonzero(labels == r)
            thin.append(min(np.ptp(rows), np.ptp(cols)) + 1)
        out[name] = {"regions": int(labels.max()), "sizes": sorted(sizes.tolist(), reverse=True),
                     "slivers (≤ 3 px wide)": int(sum(t <= 3 for t in thin))}
    return out


# ----------------------------------------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.2f} %"


def to_markdown(res: dict[str, Any]) -> str:
    lines = [BEGIN, "## Checks (constructed scenes, GT teacher, SAM masks)", "",
             f"Command: `{res['command']}` (seconds on the CPU; raw numbers in `docs/results/rosam_checks.json`).",
             "", "### AROM on a correct teacher (constructed road, 192×640)", "",
             "Flagged = M_out < 0.5; the teacher is the exact (or 1 %-noisy) inverse depth, so every flag on road, "
             "ground, cars or wall is a false positive; 'planted' = a 3×3 cluster at 2× / 0.5× disparity in each "
             "car (should be flagged). L_rgl pull = mean |∂L_rgl/∂d_s| per pixel at flagged vs inlier pixels for "
             "a student equal to the teacher.", "",
             "| AROM setting | road FP | ground FP | cars FP (1 % noise) | wall FP | road FP range (m) "
             "| planted 2× 3×3 | planted 0.5× 3×3 | planted 1.3× 1 px | L_rgl pull flagged / inlier |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for name, r in res["constructed"].items():
        rng = r["fp_road_depth_range_m"]
        lines.append(f"| {name} | {_pct(r['fp_road_exact'])} | {_pct(r['fp_ground_exact'])} | "
                     f"{_pct(r['fp_cars_noise1%'])} | {_pct(r['fp_wall_exact'])} | "
                     f"{'–' if rng is None else f'{rng[0]:.1f}–{rng[1]:.1f}'} | {_pct(r['tp_planted_x2_3px'])} | "
                     f"{_pct(r['tp_planted_x0.5_3px'])} | {_pct(r['tp_planted_x1.3_1px'])} | "
                     f"{r['rgl_outlier_grad']:.3g} / {r['rgl_inlier_grad']:.3g} |")
    if res.get("world"):
        lines += ["", f"### AROM on the world's clear test frames, GT depth as the teacher "
                  f"({next(r['frames'] for r in res['world'].values() if 'frames' in r)} frames, 64×192)", "",
                  "| masks / setting | flagged (mean over frames) | worst frame |", "|---|---:|---:|"]
        for name, r in res["world"].items():
            if "flagged_mean" in r:
                lines.append(f"| {name} | {_pct(r['flagged_mean'])} | {_pct(r['flagged_max'])} |")
        lines += ["", "### SRC's scale with the segmenter (same frames, random untrained 64-d features, τ_c 0.1)", "",
                  "| masks | regions ≥ 4 px (mean) | plain InfoNCE | ÷ log R (used) |", "|---|---:|---:|---:|"]
        for name, r in res["world"].items():
            if "regions" in r:
                lines.append(f"| {name[4:]} | {r['regions']:.0f} | {r['plain']:.3f} | {r['normalised']:.3f} |")
    lines += ["", "### σ-floor of L_rgl (the four uniform cars, 0.2 % noise, student = teacher)", "",
              "Correct teacher: whatever AROM flags is noise and L_rgl's pull there is spurious. Planted: one pixel "
              "per car at 2× disparity, the pull L_rgl exists for (mean |∂L_rgl/∂d_s| per pixel × pixel count).", "",
              "| σ floor (× μ) | correct: cars flagged | correct: L_rgl | correct: pull per car pixel "
              "| planted: caught | planted: pull at the outlier | planted: pull per inlier |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in res["sigma_floor"].items():
        lines.append(f"| {name} | {_pct(r['correct_flagged_inliers'])} | {r['correct_loss']:.3g} | "
                     f"{r['correct_grad_inliers']:.3g} | {_pct(r['planted_caught'])} | {r['planted_grad']:.3g} | "
                     f"{r['planted_grad_inliers']:.3g} |")
    lines += ["", "### SAM post-processing (3 near-duplicates of a 960 px car, a second car, the road)", "",
              "| post-processing | regions | region sizes (px) | slivers ≤ 3 px wide |", "|---|---:|---|---:|"]
    for name, r in res["sam"].items():
        lines.append(f"| {name} | {r['regions']} | {', '.join(map(str, r['sizes']))} | "
                     f"{r['slivers (≤ 3 px wide)']} |")
    return "\n".join([*lines, "", END, ""])


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the marked checks section of ``path``, leaving the rest of the file as it is."""
    text = path.read_text() if path.is_file() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default=str(REPO / "data" / "world" / "small"), help="world root (GT teacher)")
    parser.add_argument("--frames", type=int, default=20, help="clear test frames of the world")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    res = {"command": "python benchmarks/rosam_checks.py", "old": OLD, "new": NEW,
           "constructed": constructed_rows(), "sigma_floor": sigma_floor_rows(), "sam": sam_rows(),
           "world": world_rows(Path(args.world), args.frames, 64, 192)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rosam_checks.json").write_text(json.dumps(res, indent=2))
    write_section(out / "rosam.md", to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
