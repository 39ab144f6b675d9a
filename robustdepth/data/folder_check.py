"""``robustdepth data check ROOT --dataset folder``: what a user's own folder holds, before training on it.

Reports per sequence: frames and their sizes (mixed sizes are fine for ``eval`` and ``predict``, training
resizes every frame), unreadable images, the camera (``intrinsics.txt`` or ``--intrinsics``) against the
first frame's size, and GT depth (``depth/<stem>.npy|.png``): how many frames have it, whether its size
matches the image and whether it has valid pixels. Frames are labelled with the condition
``data.options.condition`` (default ``clear``) in every results table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from robustdepth.data.base import DataError, check_principal_point, read_depth
from robustdepth.data.cli import Report
from robustdepth.data.folder import DEPTH_SUFFIXES, FolderSequence, folder_sequences


def _image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the image header, or None when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _gt_path(seq: FolderSequence, frame: Path) -> Path | None:
    for suffix in DEPTH_SUFFIXES:
        path = seq.folder / "depth" / f"{frame.stem}{suffix}"
        if path.is_file():
            return path
    return None


def check_sequence(seq: FolderSequence, report: Report) -> None:
    """Frames, sizes, camera and GT of one sequence into ``report``."""
    sizes = {frame: _image_size(frame) for frame in seq.frames}
    unreadable = [frame for frame, size in sizes.items() if size is None]
    report.missing(f"{seq.name}: readable images", unreadable, len(seq.frames))
    counts = Counter(size for size in sizes.values() if size is not None)
    if not counts:
        return
    shown = ", ".join(f"{w}×{h} ({n})" for (h, w), n in counts.most_common())
    (report.warn if len(counts) > 1 else report.ok)(
        f"{seq.name}: {len(seq.frames)} frames, size(s) {shown}"
        + (" — mixed sizes: eval/predict handle them; training resizes every frame" if len(counts) > 1 else ""))
    first = next(size for size in sizes.values() if size is not None)
    try:
        check_principal_point(seq.intrinsics(), first[0], first[1], f"sequence {seq.name}")
        K = seq.intrinsics()
        report.ok(f"{seq.name}: camera fx={K[0, 0]:.1f} fy={K[1, 1]:.1f} cx={K[0, 2]:.1f} cy={K[1, 2]:.1f}")
    except DataError as err:
        report.problems += 1
        report.lines.append(f"BAD      {' '.join(str(err).split())}")
    _check_gt(seq, sizes, report)


def _check_gt(seq: FolderSequence, sizes: dict[Path, Any], report: Report) -> None:
    gts = {frame: _gt_path(seq, frame) for frame in seq.frames}
    have = [frame for frame, path in gts.items() if path is not None]
    if not have:
        report.warn(f"{seq.name}: no GT depth (depth/<stem>.npy or 16-bit .png): predict works, eval needs GT")
        return
    report.missing(f"{seq.name}: GT depth", [seq.folder / "depth" / f"{f.stem}.npy" for f in seq.frames
                                             if gts[f] is None], len(seq.frames))
    bad = []
    for frame in have:
        try:
            depth = read_depth(gts[frame])
        except DataError as err:
            bad.append(f"{gts[frame]}: {err}")
            continue
        if sizes[frame] is not None and depth.shape != sizes[frame]:
            bad.append(f"{gts[frame]}: GT {depth.shape[1]}×{depth.shape[0]} but image "
                       f"{sizes[frame][1]}×{sizes[frame][0]}")
        elif not (depth > 0).any():
            bad.append(f"{gts[frame]}: no valid (> 0) pixel")
    if bad:
        report.problems += 1
        report.lines.append(f"BAD      {seq.name}: {len(bad)} GT file(s), e.g. {bad[0]}")
    else:
        report.ok(f"{seq.name}: GT of {len(have)} frame(s) readable, sized like its image, with valid pixels")


def check_folder(root: Path, intrinsics: Any = None, condition: str = "clear") -> Report:
    """The report of ``robustdepth data check ROOT --dataset folder``."""
    report = Report()
    if isinstance(intrinsics, str) and "," in intrinsics:
        intrinsics = [float(v) for v in intrinsics.split(",")]
    try:
        sequences = folder_sequences(root, intrinsics, condition)
    except DataError as err:
        report.problems += 1
        report.lines.append(f"MISSING  {' '.join(str(err).split())}")
        return report
    report.ok(f"{len(sequences)} sequence(s) under {root}; frames labelled {condition!r} "
              "(set data.options.condition=NAME when evaluating, e.g. night)")
    for seq in sequences:
        check_sequence(seq, report)
    return report
