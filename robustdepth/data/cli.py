"""``robustdepth data …``: check a dataset on disk, export KITTI GT, nuScenes static filter, RobotCar GT.

``check`` answers the field's most common support question ("my numbers differ") by printing what the
loader will actually use — which split files, how many frames are missing (with paths), JPEG or PNG,
native resolutions, the K the loader uses next to the calibration's, and whether GT exists.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from robustdepth.data.base import DataError

SHOW = 5  # missing paths listed per problem


class Report:
    """Collects OK / WARN / MISSING lines; ``problems`` counts what would break training or evaluation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.problems = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"OK       {text}")

    def warn(self, text: str) -> None:
        self.lines.append(f"WARN     {text}")

    def missing(self, what: str, paths: list[Path], total: int) -> None:
        if not paths:
            self.ok(f"{what}: all {total} present")
            return
        self.problems += 1
        shown = "\n           ".join(str(p) for p in paths[:SHOW])
        self.lines.append(f"MISSING  {what}: {len(paths)} of {total}, e.g.\n           {shown}")

    def text(self) -> str:
        verdict = "no problems found" if not self.problems else f"{self.problems} problem(s)"
        return "\n".join([*self.lines, f"-- {verdict}"])


def check_kitti(root: Path, splits_dir: Path, splits: list[str], png: bool | None, required: bool = True) -> Report:
    """Split files, images (and their format / size), calibration, velodyne and improved GT of KITTI.

    ``required=False`` (no ``--split`` given): a split whose folder or images are entirely absent is
    skipped with a note, so an evaluation-only root (Eigen test frames only) passes.
    """
    from robustdepth.data.kitti import (
        MD2_NORMALISED_K,
        KittiSequence,
        read_split_file,
        rectified_intrinsics,
        scan_size_problem,
    )

    report = Report()
    checked = 0
    for split in splits:
        path = splits_dir / split
        files = sorted(path.glob("*_files.txt")) if path.is_dir() else []
        if not files:
            if required:
                report.missing(f"split folder {split}", [path], 1)
            else:
                report.ok(f"split folder {split}: absent, skipped (--split {split} to require it)")
            continue
        for split_file in files:
            entries = read_split_file(split_file)
            report.ok(f"{split_file}: {len(entries)} entries")
            clear = [KittiSequence(root, e.folder, e.camera, ".jpg").image_path(e.frame, "clear") for e in entries]
            jpg = [p for p in clear if p.is_file()]
            png_paths = [p.with_suffix(".png") for p in clear]
            n_png = sum(p.is_file() for p in png_paths)
            use_png = png if png is not None else n_png > len(jpg)
            if png is None:
                report.ok(f"image format: {len(jpg)} .jpg, {n_png} .png -> set data.options.png={use_png} "
                          "(MD2 trains on JPEG by default; --png numbers differ slightly)")
            wanted = png_paths if use_png else clear
            absent = [p for p in wanted if not p.is_file()]
            if not required and len(absent) == len(wanted):
                report.ok(f"{split_file.parent.name}/{split_file.name}: none of its {len(wanted)} images on disk, "
                          f"skipped (--split {split} to require it)")
                continue
            report.missing(f"{split_file.parent.name}/{split_file.name} images", absent, len(wanted))
            checked += 1
            dates = sorted({e.folder.split("/")[0] for e in entries})
            calib = [root / d / f for d in dates for f in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt")]
            report.missing("calibration files", [p for p in calib if not p.is_file()], len(calib))
            if split_file.name == "test_files.txt":
                seqs = [KittiSequence(root, e.folder, 2) for e in entries]
                if split == "eigen_benchmark":
                    gt = [s.improved_gt_path(e.frame) for s, e in zip(seqs, entries)]
                    report.missing("improved GT (proj_depth/groundtruth/image_02)", [p for p in gt if not p.is_file()],
                                   len(gt))
                else:
                    gt = [s.velodyne_path(e.frame) for s, e in zip(seqs, entries)]
                    report.missing("velodyne scans (Eigen GT)", [p for p in gt if not p.is_file()], len(gt))
                    present = [p for p in gt if p.is_file()]
                    if present:
                        report.missing("velodyne scans with a valid size (N×4 float32)",
                                       [p for p in present if scan_size_problem(p)], len(present))
            sizes: Counter[tuple[str, tuple[int, int]]] = Counter()
            for date in dates:
                sample = next((p for p in wanted if p.is_file() and date in str(p)), None)
                if sample is not None:
                    with Image.open(sample) as img:
                        sizes[(date, img.size)] += 1
                    cdir = root / date
                    if (cdir / "calib_cam_to_cam.txt").is_file():
                        Kc = rectified_intrinsics(cdir, 2)
                        w, h = img.size
                        fx, fy, cx, cy = MD2_NORMALISED_K
                        report.ok(f"{date}: {w}x{h}; MD2 K (used) fx={fx * w:.1f} fy={fy * h:.1f} cx={cx * w:.1f} "
                                  f"cy={cy * h:.1f} vs P_rect_02 fx={Kc[0, 0]:.1f} fy={Kc[1, 1]:.1f} "
                                  f"cx={Kc[0, 2]:.1f} cy={Kc[1, 2]:.1f} (intrinsics=calib: latter)")
            if len({size for _, size in sizes}) > 1:
                report.warn("native resolutions differ between recording days "
                            f"{sorted({s for _, s in sizes})}: GT stays native, predictions are resized per frame")
    if not checked:
        report.missing(f"images of any split in {splits}", [root], 1)
    return report


def check_nuscenes(root: Path, version: str, scene_splits: str | None) -> Report:
    from robustdepth.data.nuscenes import (
        LIDAR,
        NuScenesIndex,
        load_tables,
        reported_condition,
        scene_condition,
        scene_split_names,
    )

    report = Report()
    tables = load_tables(root, version)
    report.ok(f"{root / version}: " + ", ".join(f"{len(v)} {k}" for k, v in tables.items()))
    try:
        splits = scene_split_names(tables, version, scene_splits)
        report.ok(f"scene split: {len(splits['train'])} train, {len(splits['val'])} val scenes")
    except DataError as err:
        report.problems += 1
        report.lines.append(f"MISSING  {err}")
        splits = {"val": {s["name"] for s in tables["scene"]}}
    labels = Counter(reported_condition(scene_condition(s["description"])) for s in tables["scene"]
                     if s["name"] in splits["val"])
    report.ok(f"val scene conditions: {dict(labels)}")
    index = NuScenesIndex(tables)
    cams = [sd for sd in tables["sample_data"] if index.channel(sd) == "CAM_FRONT"]
    report.missing("CAM_FRONT images", [root / sd["filename"] for sd in cams if not (root / sd["filename"]).is_file()],
                   len(cams))
    lidar = [sd for sd in tables["sample_data"] if sd["is_key_frame"] and index.channel(sd) == LIDAR]
    report.missing("LIDAR_TOP keyframes (GT)", [root / sd["filename"] for sd in lidar
                                                if not (root / sd["filename"]).is_file()], len(lidar))
    return report


def check_robotcar(root: Path, splits_dir: Path, models_dir: Path, camera: str) -> Report:
    from robustdepth.data.robotcar import RUNS, RobotCarSequence, read_camera_model, read_robotcar_split, split_path

    report = Report()
    K, _ = read_camera_model(models_dir, camera)
    report.ok(f"camera {camera}: fx={K[0, 0]:.3f} fy={K[1, 1]:.3f} cx={K[0, 2]:.3f} cy={K[1, 2]:.3f} at 1280x960 "
              "(crop top 768 rows -> K unchanged but for the crop offset)")
    for run in RUNS:
        seq = RobotCarSequence(root, run, camera, models_dir)
        for split in ("train", "test"):
            path = split_path(splits_dir, run, split)
            if not path.is_file():
                report.missing(f"{run} {split} split", [path], 1)
                continue
            stamps = read_robotcar_split(path)
            images = [seq.folder / f"{s}.png" for s in stamps]
            report.missing(f"{run} {split} images", [p for p in images if not p.is_file()], len(images))
            if split == "test":
                gt = [root / run / "lms_front_synchronized/vo/time_margin=+-4.0e+06" / f"{s}.pcd.bin" for s in stamps]
                report.missing(f"{run} test GT clouds (robustdepth data robotcar-gt)",
                               [p for p in gt if not p.is_file()], len(gt))
    return report


def check_drivingstereo(root: Path, splits_dir: Path | None) -> Report:
    from robustdepth.data.drivingstereo import DEPTH_DIR, IMAGE_DIR, WEATHERS

    report = Report()
    for weather in WEATHERS:
        names_file = splits_dir / weather / "test_files.txt" if splits_dir else None
        if names_file is not None and names_file.is_file():
            names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
        elif (root / weather / IMAGE_DIR).is_dir():
            names = sorted(p.name for p in (root / weather / IMAGE_DIR).iterdir())
        else:
            report.missing(f"{weather} images", [root / weather / IMAGE_DIR], 1)
            continue
        images = [root / weather / IMAGE_DIR / n for n in names]
        depths = [root / weather / DEPTH_DIR / f"{Path(n).stem}.png" for n in names]
        report.missing(f"{weather} images", [p for p in images if not p.is_file()], len(images))
        report.missing(f"{weather} GT depth", [p for p in depths if not p.is_file()], len(depths))
        if len(names) != 500:
            report.warn(f"{weather}: {len(names)} frames (the papers' subsets have 500)")
    return report


# ------------------------------------------------------------------------------------------ commands


def cmd_check(args: argparse.Namespace) -> int:
    root = Path(args.root)
    png = None if args.png is None else args.png == "true"
    splits_dir = Path(args.splits_dir or root / "splits")
    if args.dataset == "kitti" and not args.split and not list(splits_dir.glob("*/*_files.txt")):
        from robustdepth.data.drives import check_kitti_drives

        report = check_kitti_drives(root, png)  # a recorded drive without MD2's split files
    elif args.dataset == "kitti":
        report = check_kitti(root, splits_dir, args.split or ["eigen_zhou", "eigen", "eigen_benchmark"], png,
                             required=bool(args.split))
    elif args.dataset == "kitti_odometry":
        from robustdepth.data.kitti_odometry import check_kitti_odometry

        report = check_kitti_odometry(root, args.sequence)
    elif args.dataset == "nuscenes":
        report = check_nuscenes(root, args.version, args.scene_splits)
    elif args.dataset == "robotcar":
        report = check_robotcar(root, Path(args.splits_dir or root / "splits"),
                                Path(args.models_dir or root / "models"), args.camera)
    elif args.dataset == "folder":
        from robustdepth.data.folder_check import check_folder

        report = check_folder(root, args.intrinsics, args.condition)
    else:
        report = check_drivingstereo(root, Path(args.splits_dir) if args.splits_dir else None)
    print(report.text())
    return 1 if report.problems else 0


def cmd_export_gt(args: argparse.Namespace) -> int:
    from robustdepth.data.kitti import export_gt

    root = Path(args.root)
    split_file = Path(args.splits_dir or root / "splits") / args.split / "test_files.txt"
    out = Path(args.out or split_file.parent / "gt_depths.npz")
    export_gt(root, split_file, out, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


def cmd_static_filter(args: argparse.Namespace) -> int:
    from robustdepth.data.nuscenes import static_filter

    result = static_filter(Path(args.root), args.version, args.scene_splits, args.threshold)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    print(f"kept {len(result['keep'])} keyframes, dropped {result['dropped']} static train keyframes -> {out} "
          f"(use data.options.static_filter={out})")
    return 0


def cmd_robotcar_gt(args: argparse.Namespace) -> int:
    from robustdepth.data.robotcar import RUNS, precompute_gt, read_robotcar_split, split_path

    root = Path(args.root)
    splits_dir = Path(args.splits_dir or root / "splits")
    for run in args.run or list(RUNS):
        stamps = read_robotcar_split(split_path(splits_dir, run, args.split))
        written = precompute_gt(root, run, stamps, Path(args.extrinsics_dir) if args.extrinsics_dir else None)
        print(f"{run}: {len(written)} GT clouds in {written[0].parent if written else root / run}")
    return 0


def add_parser(subparsers: Any) -> None:
    """``robustdepth data {check, export-gt, static-filter, robotcar-gt}``."""
    data = subparsers.add_parser("data", help="check real datasets, export / precompute their GT",
                                 description="Real datasets: validate a root on disk and prepare evaluation GT.")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    p = sub.add_parser("check", help="validate a dataset root; list what is missing (exit 1 if anything is)")
    p.add_argument("root")
    p.add_argument("--dataset", required=True,
                   choices=("kitti", "kitti_odometry", "nuscenes", "robotcar", "drivingstereo", "folder"))
    p.add_argument("--intrinsics", help="folder: fx,fy,cx,cy when the folder has no intrinsics.txt")
    p.add_argument("--condition", default="clear", help="folder: the condition label its frames get")
    p.add_argument("--splits-dir", help="split files (KITTI: MD2's splits/; RobotCar: RNW or md4all splits)")
    p.add_argument("--split", action="append",
                   help="KITTI split folder(s) to require (default: the MD2 ones whose images are on disk; "
                        "without split files every drive on disk is checked)")
    p.add_argument("--sequence", action="append", help="KITTI odometry sequence(s) (default all)")
    p.add_argument("--png", choices=("true", "false"), help="KITTI: expected image format (default: detect)")
    p.add_argument("--version", default="v1.0-trainval", help="nuScenes table version")
    p.add_argument("--scene-splits", help="nuScenes: JSON of train/val scene names (without nuscenes-devkit)")
    p.add_argument("--models-dir", help="RobotCar SDK models/ (default ROOT/models)")
    p.add_argument("--camera", default="stereo/left", help="RobotCar camera folder")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export-gt", help="Monodepth2's export_gt_depth: gt_depths.npz of a KITTI test split")
    p.add_argument("dataset", choices=("kitti",))
    p.add_argument("root")
    p.add_argument("--split", default="eigen", choices=("eigen", "eigen_benchmark"))
    p.add_argument("--splits-dir", help="MD2's splits/ folder (default ROOT/splits)")
    p.add_argument("--out", help="output .npz (default <splits>/<split>/gt_depths.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export_gt)

    p = sub.add_parser("static-filter", help="md4all's nuScenes static-frame filter (ego speed < 0.5 m/s)")
    p.add_argument("dataset", choices=("nuscenes",))
    p.add_argument("root")
    p.add_argument("--out", required=True, help="JSON to write; train with data.options.static_filter=OUT")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--scene-splits", help="JSON of train/val scene names (without nuscenes-devkit)")
    p.add_argument("--threshold", type=float, default=0.5, help="m/s (md4all: 0.5)")
    p.set_defaults(func=cmd_static_filter)

    p = sub.add_parser("robotcar-gt", help="accumulate front-laser scans (±4 s, VO) into md4all's GT clouds")
    p.add_argument("root")
    p.add_argument("--run", action="append", help="run(s) (default both md4all runs)")
    p.add_argument("--split", default="test")
    p.add_argument("--splits-dir")
    p.add_argument("--extrinsics-dir", help="SDK extrinsics/ (default ROOT/extrinsics)")
    p.set_defaults(func=cmd_robotcar_gt)


__all__ = ["add_parser", "check_drivingstereo", "check_kitti", "check_nuscenes", "check_robotcar"]
