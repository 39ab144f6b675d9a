"""Write a world to disk, frame by frame (memory stays bounded by one frame), in the interface layout::

    ROOT/world.json                                   preset, version, generator parameters, splits
    ROOT/<split>/<sequence>/intrinsics.txt            3×3 K in pixels at the stored resolution
    ROOT/<split>/<sequence>/poses.txt                 camera-to-world 3×4 per line, row-major (x right, y down)
    ROOT/<split>/<sequence>/meta.json                 seed, speeds, static flags, severities, conditions, …
    ROOT/<split>/<sequence>/<condition>/image/000000.png   8-bit RGB
    ROOT/<split>/<sequence>/<condition>/depth/000000.npy   float32 metres along the optical axis, 0 = sky
    ROOT/<split>/<sequence>/objects/000000.png        uint16 object id, 0 = sky/none

Every sequence draws its own seed from (world seed, split, index), so the output is byte-identical for
the same preset and seed whatever the number of workers or the order in which sequences finish.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from robustdepth.world import conditions as C
from robustdepth.world import scene as S
from robustdepth.world.presets import CONDITIONS, SPLITS, Preset, get_preset
from robustdepth.world.sequence import SequenceRenderer

VERSION = "1.1"
# RLE at level 1 encodes 2× faster than the default deflate and, on noisy renders, as small (lossless either way)
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


class WorldExistsError(FileExistsError):
    """The output folder holds something other than this (preset, seed) world."""


@dataclass(frozen=True)
class SequenceJob:
    """One sequence to render: where, with which seed, how many frames, which conditions."""

    split: str
    name: str
    seed: int
    frames: int
    conditions: tuple[str, ...]


def sequence_seed(world_seed: int, split: str, index: int) -> int:
    """A 31-bit seed per sequence, independent of generation order."""
    state = np.random.SeedSequence([world_seed, SPLITS.index(split), index]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def plan(preset: Preset, seed: int) -> list[SequenceJob]:
    """All sequences of a preset, in a fixed order."""
    jobs = []
    for split in SPLITS:
        spec = preset.splits[split]
        for i in range(spec.sequences):
            jobs.append(SequenceJob(split, f"seq_{i:03d}", sequence_seed(seed, split, i), spec.frames,
                                    spec.conditions))
    return jobs


def _write_png(path: Path, array: np.ndarray) -> None:
    image = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(path), image, _PNG):
        raise OSError(f"could not write {path}")


def _sequence_meta(job: SequenceJob, world_seed: int, preset: Preset, scene: S.Scene, traj: S.Trajectory,
                   severity: dict[str, float]) -> dict:
    conds = list(job.conditions)
    return {
        "seed": job.seed, "world_seed": world_seed, "split": job.split, "sequence": job.name,
        "num_frames": job.frames, "fps": S.FPS, "height": preset.height, "width": preset.width,
        "resolution": [preset.height, preset.width], "supersample": preset.supersample,
        "conditions": conds,
        "severity": {c: severity[c] for c in conds},
        "condition_parameters": {c: C.condition_parameters(c, severity[c]) for c in conds},
        "speeds": [float(v) for v in traj.speeds], "static": [bool(s) for s in traj.static],
        "lane_offset": traj.lane_offset, "camera_height": S.CAMERA_HEIGHT,
        "sun_direction": [round(float(x), 6) for x in scene.sun_direction],
        "road": scene.road.to_json(), "num_primitives": len(scene.prims),
        "object_ids": {"sky": 0, "road": S.ROAD_ID, "left_sidewalk": S.LEFT_SIDEWALK_ID,
                       "right_sidewalk": S.RIGHT_SIDEWALK_ID, "left_verge": S.LEFT_VERGE_ID,
                       "right_verge": S.RIGHT_VERGE_ID, "first_instance": S.FIRST_INSTANCE_ID},
    }


def render_sequence(job: SequenceJob, world_seed: int, preset: Preset, root: Path, on_frame=None) -> int:
    """Render and write one sequence; returns the number of images written. ``on_frame(n)`` is called
    after each frame with the number of images it wrote (progress)."""
    scene, traj = S.build_sequence(job.seed, job.frames, preset.stop_probability)
    severity = C.severities(job.seed)
    renderer = SequenceRenderer(scene, traj, preset.height, preset.width, preset.supersample, severity)
    folder = root / job.split / job.name
    for sub in ["objects", *(f"{c}/{kind}" for c in job.conditions for kind in ("image", "depth"))]:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "intrinsics.txt", renderer.K, fmt="%.6f")
    np.savetxt(folder / "poses.txt", traj.poses[:, :3, :4].reshape(job.frames, 12), fmt="%.9f")
    written = 0
    for i in range(job.frames):
        frame = renderer.render(i, job.conditions)
        _write_png(folder / "objects" / f"{i:06d}.png", frame.ids)
        for c in job.conditions:
            _write_png(folder / c / "image" / f"{i:06d}.png", frame.images[c])
            np.save(folder / c / "depth" / f"{i:06d}.npy", frame.depth)
        written += len(job.conditions)
        if on_frame is not None:
            on_frame(len(job.conditions))
    meta = _sequence_meta(job, world_seed, preset, scene, traj, severity)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return written


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def retain_freed_memory(mib: int = 256) -> bool:
    """Keep up to ``mib`` MiB of freed heap in this process instead of returning it to the kernel.

    A frame allocates and frees ~100 full-frame tensors of 0.5–3 MB. With glibc's defaults those pages go
    back to the kernel and are faulted in again on the next allocation: ~10,000 page faults and ~15 % of a
    night frame's CPU time, measured. Rendering is unchanged (allocation only), and peak memory barely moves
    because the retained pages are the ones the next frame reuses (410 → 422 MiB per process in
    ``benchmarks/world_speed.py``). Returns False where the C library has no ``mallopt`` (not glibc), which then
    keeps its own policy.
    """
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        return False
    # allocations below the mmap threshold come from the heap, which is trimmed only above the trim threshold
    return bool(mallopt(_M_MMAP_THRESHOLD, 64 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, mib << 20))


def _worker(job: SequenceJob, world_seed: int, preset: Preset, root: str) -> int:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    retain_freed_memory()
    return render_sequence(job, world_seed, preset, Path(root))


def _world_json(preset: Preset, seed: int, jobs: list[SequenceJob], complete: bool) -> dict:
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for job in jobs:
        splits[job.split].append(job.name)
    return {
        "preset": preset.name, "seed": seed, "version": VERSION, "complete": complete,
        "conditions": list(CONDITIONS), "resolution": [preset.height, preset.width],
        "generator": {**preset.to_json(), "fps": S.FPS, "camera_height": S.CAMERA_HEIGHT,
                      "intrinsics_normalised": {"fx": 0.58, "fy": 1.92, "cx": 0.5, "cy": 0.5},
                      "look_ahead_m": S.LOOK_AHEAD},
        "splits": splits,
    }


def check_root(out: Path, preset: str, seed: int) -> None:
    """Refuse to write into a folder that holds a different world (or something that is not a world)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise WorldExistsError(f"--out {out} exists and is not a folder")
    marker = out / "world.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("preset") != preset or info.get("seed") != seed:
            raise WorldExistsError(
                f"{out} already holds the world preset={info.get('preset')!r} seed={info.get('seed')}; refusing "
                f"to overwrite it with preset={preset!r} seed={seed}. Use another --out or delete that folder.")
        return
    if any(out.iterdir()):
        raise WorldExistsError(f"{out} is not empty and has no world.json (not a world root); refusing to write "
                               "into it. Use an empty or new folder.")


def ensure_world(preset: str, seed: int, out: Path, progress: bool = True, workers: int = 1) -> Path:
    """``out`` holding the finished world ``preset`` / ``seed``: reused when its ``world.json`` says it is
    complete (and is that world), rendered otherwise — an interrupted render starts again, and a folder
    holding another world raises :class:`WorldExistsError` (:func:`generate`)."""
    marker = Path(out) / "world.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("complete") and info.get("preset") == preset and info.get("seed") == seed:
            return Path(out)
    return generate(preset, seed, out, progress=progress, workers=workers)


def generate(preset: str, seed: int, out: Path, progress: bool = True, workers: int = 1) -> Path:
    """Render the world ``preset`` with ``seed`` into ``out`` and return ``out``.

    Re-running with the same preset and seed rewrites the same bytes; a folder holding another world
    raises :class:`WorldExistsError`. ``workers`` > 1 renders sequences in parallel processes.
    """
    spec = get_preset(preset)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    check_root(out, preset, seed)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(spec, seed)
    (out / "world.json").write_text(json.dumps(_world_json(spec, seed, jobs, False), indent=1) + "\n")
    bar = tqdm(total=spec.total_renders, desc=f"world {preset} seed {seed}", unit="img", disable=not progress)
    threads = torch.get_num_threads()
    retain_freed_memory()
    # One thread per process: the renderer issues many small ops, and on a shared 2-core machine an
    # oversubscribed thread pool was measured ~40× slower; parallelism comes from worker processes.
    torch.set_num_threads(1)
    try:
        if workers == 1:
            for job in jobs:
                render_sequence(job, seed, spec, out, on_frame=bar.update)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_worker, job, seed, spec, str(out)) for job in jobs]
                for fut in as_completed(futures):
                    bar.update(fut.result())
    finally:
        torch.set_num_threads(threads)
        bar.close()
    (out / "world.json").write_text(json.dumps(_world_json(spec, seed, jobs, True), indent=1) + "\n")
    return out
