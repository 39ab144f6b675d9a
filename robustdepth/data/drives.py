"""Whole recorded drives without split files, and several datasets trained as one.

``kitti_drives``: every frame of KITTI raw drives in the raw layout, the way a user's own recording
arrives (no Monodepth2 split file lists it)::

    ROOT/2011_09_26/calib_cam_to_cam.txt calib_velo_to_cam.txt
    ROOT/2011_09_26/2011_09_26_drive_0095_sync/image_02/data/0000000000.jpg …   (.png detected)
    ROOT/2011_09_26/2011_09_26_drive_0095_sync/velodyne_points/data/0000000000.bin  (optional: eval GT)

Options: ``drives`` (``[2011_09_26/2011_09_26_drive_0095_sync, …]``, default every drive found),
``camera`` (2), ``intrinsics`` (``calib`` = P_rect_0c of the recording day, the default because a
drive's own calibration is the truthful K; ``md2`` = Monodepth2's normalised 0.58/1.92 K).
Training uses every frame with its neighbours; evaluation every frame with a velodyne scan (GT as
``robustdepth.data.kitti.generate_depth_map``, velodyne x as depth like MD2's Eigen export).

``mixed``: the items of several sources in one training set, each source a small data block::

    data:
      dataset: mixed
      root: ../shared/realdata          # base of relative source roots
      options:
        sources:
          - {dataset: kitti_drives, root: kitti_raw_2011_09_26_drive_0095}
          - {dataset: folder, root: kitti_raw_seq_demo_slam/input, intrinsics: [721.5, 721.5, 609.6, 172.9]}

Each source keeps its own intrinsics and native size (samples are resized to ``data.height × width``
and K rescaled per frame, as for any dataset), so recordings of different cameras mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from PIL import Image

from robustdepth.data.registry import register_dataset
from robustdepth.data.base import DataError, FrameItem, items_with_neighbours
from robustdepth.data.kitti import KittiSequence, rectified_intrinsics, scan_size_problem

DRIVES_OPTIONS = ("drives", "camera", "intrinsics")
MIXED_OPTIONS = ("sources",)
SOURCE_KEYS = ("dataset", "root", "intrinsics", "options")


def find_drives(root: Path, camera: int = 2) -> list[str]:
    """``<date>/<drive>`` folders under a raw root that hold ``image_0<camera>/data``."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder (expected a KITTI raw root holding 2011_09_26/ …)")
    return sorted(str(p.parent.parent.relative_to(root)) for p in root.glob(f"*/*/image_0{camera}/data")
                  if p.is_dir())


def drive_extension(root: Path, drive: str, camera: int = 2) -> str:
    """``.jpg`` or ``.png``: the format a drive's frames are stored in (one per drive)."""
    folder = root / drive / f"image_0{camera}" / "data"
    counts = {ext: len(list(folder.glob(f"*{ext}"))) for ext in (".jpg", ".png")}
    if not any(counts.values()):
        raise DataError(f"no .jpg/.png frames in {folder}")
    if all(counts.values()):
        raise DataError(f"{folder} mixes .jpg ({counts['.jpg']}) and .png ({counts['.png']}) frames; keep one")
    return ".jpg" if counts[".jpg"] else ".png"


def drive_sequence(root: Path, drive: str, camera: int = 2, intrinsics: str = "calib") -> KittiSequence:
    """A whole drive as a :class:`KittiSequence` (frames must be numbered 0..N−1 without gaps)."""
    if intrinsics not in ("calib", "md2"):
        raise DataError(f"data.options.intrinsics={intrinsics!r}: use calib (P_rect) or md2 (0.58/1.92)")
    ext = drive_extension(root, drive, camera)
    seq = KittiSequence(root, drive, camera, ext, gt="velodyne", intrinsics=intrinsics)
    present = {p.stem for p in (root / drive / f"image_0{camera}" / "data").glob(f"*{ext}")}
    gaps = [i for i in range(len(present)) if f"{i:010d}" not in present]
    if gaps:
        raise DataError(f"{root / drive}: frames must be numbered 0..{len(present) - 1} without gaps; "
                        f"{len(gaps)} missing, first {gaps[0]:010d}{ext}")
    return seq


@register_dataset("kitti_drives", options=DRIVES_OPTIONS)
def _drives_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    """Training: every frame with its neighbours; evaluation: every frame with a velodyne scan."""
    root = Path(data.root)
    camera = int(data.options.get("camera", 2))
    drives = list(data.options.get("drives") or find_drives(root, camera))
    if not drives:
        raise DataError(f"no drives (<date>/<drive>/image_0{camera}/data) under {root}")
    sequences = [drive_sequence(root, d, camera, str(data.options.get("intrinsics", "calib"))) for d in drives]
    if train:
        return items_with_neighbours(sequences, frame_ids, ["clear"])
    items = [FrameItem(seq, i, "clear") for seq in sequences for i in range(seq.num_frames)
             if seq.velodyne_path(i).is_file()]
    if not items:
        raise DataError(f"no velodyne scans in the drives under {root}: nothing to evaluate")
    return items


def source_config(data: Any, source: Any, index: int) -> Any:
    """The data block of one ``mixed`` source: the parent's with dataset/root/intrinsics/options replaced."""
    if not isinstance(source, dict) or "dataset" not in source or "root" not in source:
        raise DataError(f"data.options.sources[{index}] must be a mapping with dataset and root, got {source!r}")
    unknown = sorted(set(source) - set(SOURCE_KEYS))
    if unknown:
        raise DataError(f"data.options.sources[{index}] keys {unknown} unknown; valid: {list(SOURCE_KEYS)}")
    if source["dataset"] == "mixed":
        raise DataError(f"data.options.sources[{index}]: a mixed source cannot hold another mixed dataset")
    block = OmegaConf.to_container(data, resolve=True) if OmegaConf.is_config(data) else dict(data)
    root = Path(source["root"])
    block.update(dataset=source["dataset"], root=str(root if root.is_absolute() else Path(data.root) / root),
                 intrinsics=source.get("intrinsics"), options=dict(source.get("options") or {}))
    return OmegaConf.create(block)


@register_dataset("mixed", options=MIXED_OPTIONS)
def _mixed_items(data: Any, split: str, train: bool, frame_ids: Sequence[int]) -> list[FrameItem]:
    """The concatenated items of ``data.options.sources`` (each built by its own registered dataset)."""
    from robustdepth.data.registry import DATASETS, check_options

    sources = data.options.get("sources")
    if not sources:
        raise DataError("data.dataset=mixed needs data.options.sources: a list of {dataset, root, …} blocks")
    items: list[FrameItem] = []
    for index, source in enumerate(sources):
        block = source_config(data, OmegaConf.to_container(source) if OmegaConf.is_config(source) else source,
                              index)
        if block.dataset not in DATASETS:
            raise DataError(f"data.options.sources[{index}].dataset={block.dataset!r} unknown; "
                            f"registered: {sorted(DATASETS)}")
        builder, valid = DATASETS[block.dataset]
        check_options(block.dataset, dict(block.options), valid)
        items += builder(block, split, train, frame_ids)
    return items


# ------------------------------------------------------------------------------------------ check


def check_kitti_drives(root: Path, png: bool | None = None) -> Any:
    """``data check ROOT --dataset kitti`` on a raw root without split files: every drive on disk."""
    from robustdepth.data.cli import Report

    report = Report()
    drives = find_drives(root) if root.is_dir() else []
    if not drives:
        report.missing("drives (<date>/<drive>/image_02/data) and split files", [root / "splits"], 1)
        return report
    report.ok(f"no split files: checking the {len(drives)} drive(s) on disk as whole sequences "
              "(train with data.dataset=kitti_drives; --splits-dir for MD2's splits)")
    for drive in drives:
        try:
            seq = drive_sequence(root, drive)
        except DataError as err:
            report.missing(str(err), [root / drive], 1)
            continue
        if png is not None and (seq.ext == ".png") != png:
            report.missing(f"{drive}: frames are {seq.ext}, --png={str(png).lower()} expects the other",
                           [seq.image_path(0, "clear")], 1)
        with Image.open(seq.image_path(0, "clear")) as img:
            width, height = img.size
        report.ok(f"{drive}: {seq.num_frames} consecutive {seq.ext} frames, {width}x{height}")
        calib = [seq.calib_dir / f for f in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt")]
        report.missing(f"{drive} calibration files", [p for p in calib if not p.is_file()], len(calib))
        if calib[0].is_file():
            K = rectified_intrinsics(seq.calib_dir, 2)
            report.ok(f"{drive}: P_rect_02 fx={K[0, 0]:.1f} fy={K[1, 1]:.1f} cx={K[0, 2]:.1f} cy={K[1, 2]:.1f} "
                      "(kitti_drives uses it; intrinsics=md2 for MD2's 0.58/1.92)")
        scans = sorted((root / drive / "velodyne_points" / "data").glob("*.bin"))
        if scans:
            bad = [p for p in scans if scan_size_problem(p)]
            report.missing(f"{drive} velodyne scans with a valid size (N×4 float32)", bad, len(scans))
        else:
            report.ok(f"{drive}: no velodyne scans (training only; no depth GT)")
    return report


__all__ = ["check_kitti_drives", "drive_sequence", "find_drives", "source_config"]
