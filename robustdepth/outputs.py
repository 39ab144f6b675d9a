"""What ``robustdepth predict`` (and ``robustdepth.predict``) writes: depth in the formats users ask for.

Formats (any combination, ``--format npy,png16,gray,color``):

=========  ======================================  =====================================================
format     file                                    content
=========  ======================================  =====================================================
``npy``    ``<name>_depth.npy``                    float32 H×W depth (metres up to scale for mono models)
``png16``  ``<name>_depth16.png``                  uint16 depth × 256 (the KITTI convention the loaders read;
                                                   clipped to 255.996 m)
``gray``   ``<name>_gray.png``                     uint8 disparity, near = bright (min to 95th percentile)
``color``  ``<name>_disp.png``                     magma disparity (Monodepth2's normalisation)
=========  ======================================  =====================================================

Every map has the input image's resolution. Besides: ``.txt`` list inputs (one path per line, relative to
the list's folder), a side-by-side ``image | colour depth`` mp4 (``--video-out``, OpenCV's ``mp4v``) and a
coloured point cloud per frame (``--pointcloud``, binary PLY back-projected with K).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from robustdepth.data.base import DataError, parse_intrinsics

FORMATS = ("npy", "png16", "gray", "color")
FILE_SUFFIX = {"npy": "_depth.npy", "png16": "_depth16.png", "gray": "_gray.png", "color": "_disp.png"}
PNG16_SCALE = 256.0  # KITTI depth PNGs: uint16 = metres × 256
DEFAULT_FPS = 10.0


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"npy,png16"`` or a sequence → a tuple of known formats (order kept, duplicates dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    formats = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise DataError(f"--format {value!r}: use a comma-separated subset of {', '.join(FORMATS)}")
    return formats


def encode_depth(depth: np.ndarray, fmt: str) -> np.ndarray:
    """The array a format stores for an H×W depth map (what the file holds, without writing it)."""
    from robustdepth.visualize import colorize_disparity

    depth = np.asarray(depth, dtype=np.float32)
    if fmt == "npy":
        return depth
    if fmt == "png16":
        return np.clip(np.rint(depth * PNG16_SCALE), 0, 65535).astype(np.uint16)
    disp = 1.0 / depth
    if fmt == "gray":
        lo, hi = float(disp.min()), float(np.percentile(disp, 95.0))
        return (np.clip((disp - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if fmt == "color":
        return colorize_disparity(disp)
    raise DataError(f"unknown depth format {fmt!r}; use one of {FORMATS}")


def write_depth(out: Path, name: str, depth: np.ndarray, formats: Sequence[str]) -> dict[str, Path]:
    """Write ``depth`` in every format; returns ``{format: path}``."""
    written = {}
    for fmt in formats:
        path = out / f"{name}{FILE_SUFFIX[fmt]}"
        array = encode_depth(depth, fmt)
        if fmt == "npy":
            np.save(path, array)
        else:
            Image.fromarray(array).save(path)
        written[fmt] = path
    return written


# ----------------------------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Inputs with every ``.txt`` list replaced by its entries (one path per line; blank lines and ``#``
    comments skipped; relative paths are relative to the list's folder)."""
    out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.suffix.lower() != ".txt":
            out.append(path)
            continue
        if not path.is_file():
            raise DataError(f"input list not found: {path}")
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                item = Path(entry)
                out.append(item if item.is_absolute() else path.parent / item)
    if not out:
        raise DataError(f"no inputs (empty list file(s): {', '.join(map(str, inputs))})")
    return out


# ------------------------------------------------------------------------------------------ point clouds


def resolve_intrinsics(value: Any, inputs: Sequence[Path]) -> np.ndarray:
    """K (3×3, pixels of the input images) from ``value`` (``fx,fy,cx,cy``, a list, or a file), else the
    ``intrinsics.txt`` of the first input's folder; an error saying how to give it when there is none."""
    if isinstance(value, str) and "," in value:
        value = [float(v) for v in value.split(",")]
    if value is not None:
        return parse_intrinsics(value, "--intrinsics")
    for path in inputs:
        folder = path if path.is_dir() else path.parent
        if (folder / "intrinsics.txt").is_file():
            return parse_intrinsics(folder / "intrinsics.txt", f"{folder / 'intrinsics.txt'}")
    raise DataError("--pointcloud needs the camera: pass --intrinsics fx,fy,cx,cy (pixels of the input images) "
                    "or put intrinsics.txt beside the images")


def backproject(depth: np.ndarray, K: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N×3, x right, y down, z forward) of every ``stride``-th pixel, and their (v, u)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z  # pixel (u, v) at its index: the convention K is given in
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32), np.stack([v, u], -1).reshape(-1, 2)


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY of N×3 float32 points with optional N×3 uint8 colours."""
    n = len(points)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}",
              "property float x", "property float y", "property float z"]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        fields += [("r", "u1"), ("g", "u1"), ("b", "u1")]
    data = np.empty(n, dtype=fields)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is not None:
        data["r"], data["g"], data["b"] = colors[:, 0], colors[:, 1], colors[:, 2]
    with open(path, "wb") as handle:
        handle.write(("\n".join([*header, "end_header"]) + "\n").encode("ascii"))
        handle.write(data.tobytes())
    return path


def read_ply(path: Path) -> np.ndarray:
    """The structured vertex array of a PLY written by :func:`write_ply` (for checks and tests)."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    names = [line.split()[-1] for line in header if line.startswith("property")]
    types = {"float": "<f4", "uchar": "u1"}
    dtype = [(n, types[line.split()[1]]) for n, line in zip(names, [h for h in header if h.startswith("property")],
                                                            strict=True)]
    return np.frombuffer(raw[end:], dtype=dtype)


# ----------------------------------------------------------------------------------------------- video


class SideBySideVideo:
    """An mp4 (OpenCV ``mp4v``) of ``image | colour depth`` frames at the first frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def add(self, rgb: np.ndarray, colour: np.ndarray) -> None:
        import cv2

        panel = np.concatenate([rgb, colour], axis=1)
        if self._writer is None:
            self._size = (panel.shape[1] // 2 * 2, panel.shape[0] // 2 * 2)  # mp4v wants even sizes
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise DataError(f"cannot write video {self.path} (OpenCV mp4v writer did not open)")
        if (panel.shape[1], panel.shape[0]) != self._size:
            panel = cv2.resize(panel, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def video_fps(inputs: Sequence[Path]) -> float:
    """The frame rate of the first video input (for ``--video-out``), else :data:`DEFAULT_FPS`."""
    from robustdepth.inference import VIDEO_SUFFIXES

    for path in inputs:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            import cv2

            cap = cv2.VideoCapture(str(path))
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            cap.release()
            if fps > 0:
                return fps
    return DEFAULT_FPS


# ------------------------------------------------------------------------------------------ the predictor


def predict_outputs(model: Any, inputs: Sequence[str | Path], out: str | Path,
                    formats: str | Sequence[str] = ("npy", "color"), panel: bool = False,
                    post_process: bool = False, video_out: str | Path | None = None, pointcloud: bool = False,
                    intrinsics: Any = None, pointcloud_stride: int = 1, skipped: list[str] | None = None,
                    batch_size: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Predict every frame of ``inputs`` (images, folders, videos, ``.txt`` lists) and write ``formats``
    (+ ``<name>_panel.png``, ``<name>.ply``, one side-by-side ``video_out`` mp4).

    Returns one record per frame: ``{"name": ..., <format>: path, ..., ["panel", "ply"]: path}``.
    Unreadable images go to ``skipped`` when a list is given (see ``robustdepth.inference.iter_inputs``).
    """
    from tqdm.auto import tqdm

    from robustdepth.inference import PREDICT_BATCH, batched, count_inputs, iter_inputs
    from robustdepth.visualize import colorize_disparity

    fmts = parse_formats(formats)
    paths = expand_inputs(inputs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file, not a folder; name a folder for the depth maps")
    if pointcloud_stride < 1:
        raise DataError(f"--pointcloud-stride {pointcloud_stride}: must be >= 1")
    K = resolve_intrinsics(intrinsics, paths) if pointcloud else None
    video = SideBySideVideo(Path(video_out), video_fps(paths)) if video_out else None
    records: list[dict[str, Any]] = []
    try:
        with tqdm(total=count_inputs(paths), desc="predict", unit="img", disable=not progress) as bar:
            for group in batched(iter_inputs(paths, skipped), batch_size or PREDICT_BATCH):
                depths = model.infer_batch([rgb for _, rgb in group], post_process=post_process)
                out.mkdir(parents=True, exist_ok=True)
                for (name, rgb), depth in zip(group, depths, strict=True):
                    records.append(_write_frame(out, name, rgb, depth, fmts, panel, K, pointcloud_stride,
                                                video, colorize_disparity))
                bar.update(len(group))
    finally:
        if video is not None:
            video.close()
    if skipped and not records:
        raise DataError(f"no readable image among the inputs ({len(skipped)} skipped; first: {skipped[0]})")
    return records


def _write_frame(out: Path, name: str, rgb: np.ndarray, depth: np.ndarray, formats: Sequence[str], panel: bool,
                 K: np.ndarray | None, stride: int, video: SideBySideVideo | None, colorize: Any) -> dict[str, Any]:
    """All outputs of one frame (see :func:`predict_outputs`)."""
    record: dict[str, Any] = {"name": name, **write_depth(out, name, depth, formats)}
    if panel or video is not None:
        colour = colorize(1.0 / depth)
        if panel:
            record["panel"] = out / f"{name}_panel.png"
            Image.fromarray(np.concatenate([rgb, colour], axis=1)).save(record["panel"])
        if video is not None:
            video.add(rgb, colour)
    if K is not None:
        points, vu = backproject(depth, K, stride)
        record["ply"] = write_ply(out / f"{name}.ply", points, rgb[vu[:, 0], vu[:, 1]])
    return record

