"""One call from an image to a depth map, and batch prediction over files, folders and videos.

>>> model = robustdepth.load("runs/demo/baseline")       # doctest: +SKIP
>>> depth = model.infer("frame.png")                      # H×W float32 metres, input resolution
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustdepth.checkpoint import CheckpointError, load_checkpoint, load_weights
from robustdepth.configure import config_from_dict
from robustdepth.data.base import DataError, read_rgb, to_rgb
from robustdepth.data.folder import IMAGE_SUFFIXES
from robustdepth.devices import resolve_device
from robustdepth.evaluation import post_process_disparity
from robustdepth.networks import DepthNet, ScaleZeroDisparity, build_depth_net, disp_to_depth
from robustdepth.visualize import colorize_disparity

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class InferenceError(ValueError):
    """An input or a model that cannot give a meaningful depth map (the message says which and why)."""


#: Float images must lie in [0, 1]; this much slack absorbs resampling overshoot, not a 0–255 array.
FLOAT_RANGE_SLACK = 1e-3


def _check_float_range(values: np.ndarray | torch.Tensor, what: str) -> None:
    """Refuse non-finite values and a float image outside [0, 1] (typically a 0–255 array read as [0, 1])."""
    arr = values.detach().float().cpu().numpy() if torch.is_tensor(values) else np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise InferenceError(f"{what} is empty")
    if not np.isfinite(arr).all():
        raise InferenceError(f"{what} holds NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_RANGE_SLACK or hi > 1 + FLOAT_RANGE_SLACK:
        hint = "; divide by 255 (or pass a uint8 array)" if hi <= 255 + FLOAT_RANGE_SLACK and lo >= 0 else ""
        raise InferenceError(f"{what} must hold values in [0, 1], found [{lo:g}, {hi:g}]{hint}")


def _array_to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 (or H×W / H×W×1 grayscale) array → 3×H×W float in [0, 1]: uint8 / 255, uint16 / 65535,
    floats as they are (checked to be in [0, 1])."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InferenceError(f"image array must be H×W×3 (RGB) or H×W (grayscale), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InferenceError(f"image array is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        scaled = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        scaled = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        _check_float_range(image, f"float image array ({image.dtype})")
        scaled = image.astype(np.float32)
    else:
        raise InferenceError(f"image array of dtype {image.dtype}: use uint8 (0–255), uint16 (0–65535) or "
                             "float in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(scaled)).permute(2, 0, 1)


def image_to_tensor(image: Any) -> torch.Tensor:
    """Path / PIL image / H×W×3 array / 3×H×W float tensor in [0, 1] → 3×H×W float tensor.

    Arrays: uint8 (0–255), uint16 (0–65535), or float in [0, 1] — a float array outside [0, 1] (e.g.
    0–255 values) is refused, not clipped. PIL images of any mode (16-bit, grayscale) become 8-bit RGB.
    """
    if isinstance(image, (str, Path)):
        image = read_rgb(Path(image))
    if isinstance(image, Image.Image):
        image = np.asarray(to_rgb(image))
    if isinstance(image, np.ndarray):
        image = _array_to_tensor(image)
    if not torch.is_tensor(image) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise InferenceError(f"image must be a path, PIL image, H×W×3 array or 3×H×W tensor; got {shape}")
    if image.is_floating_point():
        _check_float_range(image, "image tensor")
    return image.float()


PRECISIONS = ("fp32", "bf16", "auto")
BACKENDS = ("torch", "onnxruntime")
#: Frames after which ``predict_to_folder`` compiles the network: where the cold compile is paid back by the
#: per-frame saving (both measured in docs/results/speed.md); on a GPU compiling pays sooner.
COMPILE_AFTER_FRAMES = {"cpu": 5000, "cuda": 500}
PREDICT_BATCH = 8  # frames per network call when predicting folders and videos


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions natively (CUDA with bf16 support; CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = _cpu_flags()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: let oneDNN decide whether it has bf16 kernels
        return {"avx512_bf16"} if torch.ops.mkldnn._is_mkldnn_bf16_supported() else set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 where the device has native bf16, else fp32; ``fp32``/``bf16`` pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@dataclass
class DepthModel:
    """A trained depth network ready for inference (eval mode, configured resolution and depth range).

    Speed: the network runs in channels_last memory format (oneDNN/cuDNN's fast layout; same fp32
    numerics) and, with ``precision="bf16"`` (or ``"auto"`` on a bf16-capable CPU/GPU), in bf16 with the
    weights cast once (``bf16_weights=False``: bf16 autocast over the fp32 weights instead); its speed-up per
    CPU and its depth error against fp32 are measured in docs/results/speed.md. ``compile()``
    adds ``torch.compile`` for long jobs. ``robustdepth.load`` and ``predict`` default to ``"auto"`` (the
    fastest safe path); this class and ``robustdepth eval`` default to fp32, so evaluation tables match the
    checkpoint's exactly.
    """

    net: DepthNet
    height: int
    width: int
    min_depth: float
    max_depth: float
    device: torch.device
    precision: str = "fp32"
    config: Any = None
    channels_last: bool = True
    bf16_weights: bool = True
    compiled: Any = field(default=None, repr=False)
    _compiled_shape: tuple[int, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.precision = resolve_precision(self.precision, self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self._pure_bf16:
            # The weights are cast to bf16 once here instead of on every call (what autocast does): the same
            # rounding of every weight, without re-reading 14 M fp32 parameters per image. A copy: the caller's
            # module stays fp32.
            self.net = copy.deepcopy(self.net).to(torch.bfloat16)

    @property
    def _pure_bf16(self) -> bool:
        return self.precision == "bf16" and self.bf16_weights

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, device: str = "auto", precision: str = "fp32",
                        channels_last: bool = True, backend: str = "torch") -> DepthModel:
        """Load a checkpoint (file or run directory); ``precision`` is fp32 | bf16 | auto.

        ``backend="onnxruntime"`` runs the network in ONNX Runtime (CPU, fp32) instead: ``checkpoint`` may
        then also be an ``.onnx`` file from ``robustdepth export`` (a checkpoint is exported on the fly).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; use one of {BACKENDS}")
        if backend == "onnxruntime":
            from robustdepth.export import onnx_model_from

            return onnx_model_from(checkpoint)
        ckpt = load_checkpoint(checkpoint)
        try:
            cfg = config_from_dict(ckpt["config"], strict=False)
        except ValueError as err:
            raise CheckpointError(f"checkpoint {checkpoint}: its stored config is invalid: "
                                  f"{' '.join(str(err).split())}") from None
        net = build_depth_net(cfg.model)
        load_weights(net, ckpt["models"]["depth"], checkpoint, "depth")
        dev = resolve_device(device)
        return cls(net.to(dev).eval().requires_grad_(False), cfg.data.height, cfg.data.width,
                   float(cfg.model.min_depth), float(cfg.model.max_depth), dev, precision, cfg,
                   channels_last=channels_last)

    def compile(self) -> DepthModel:
        """Run the network through ``torch.compile`` (inductor, frozen weights) from now on.

        The first call pays a cold compile (docs/results/speed.md). The weights are frozen into the compiled
        graph at its first call: load new weights into ``net`` only before that, or compile a new DepthModel.
        """
        if self.compiled is None:
            self.compiled = torch.compile(ScaleZeroDisparity(self.net), dynamic=False)
        return self

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self._pure_bf16:
            images = images.to(torch.bfloat16)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bf16" and not self._pure_bf16)
        with torch.inference_mode(), autocast:
            if self._use_compiled(images):
                import torch._inductor.config as inductor_config

                # Freezing folds the (inference-only) weights into the graph and pre-packs them for oneDNN,
                # which the compiled path needs to beat the bf16 eager one (docs/results/speed.md).
                with inductor_config.patch(freezing=True):
                    disp = self.compiled(images)
            else:
                disp = self.net(images).disp[0]
        return disp.float().contiguous()

    def _use_compiled(self, images: torch.Tensor) -> bool:
        """The compiled graph serves the first input shape it sees; other shapes (a folder's last, smaller
        batch) run eagerly rather than paying another cold compile."""
        if self.compiled is None:
            return False
        if self._compiled_shape is None:
            self._compiled_shape = tuple(images.shape)
        return tuple(images.shape) == self._compiled_shape

    @torch.inference_mode()
    def predict_disp(self, images: torch.Tensor, post_process: bool = False) -> torch.Tensor:
        """Sigmoid disparity B×1×h×w for B×3×h×w images already at the network resolution."""
        images = images.to(self.device)
        if not post_process:
            return self._forward(images)
        both = self._forward(torch.cat([images, images.flip(-1)]))
        # post_process_disparity flips the second prediction back itself.
        return post_process_disparity(both[: len(images)], both[len(images):])

    def predict_depth(self, images: torch.Tensor, post_process: bool = False) -> torch.Tensor:
        """Depth B×1×h×w (metres up to the model's scale) at the network resolution."""
        return disp_to_depth(self.predict_disp(images, post_process), self.min_depth, self.max_depth)[1]

    def infer(self, image: Any, post_process: bool = False) -> np.ndarray:
        """Depth for one image at its own resolution (disparity resized bilinearly, then inverted)."""
        return self.infer_batch([image], post_process)[0]

    def infer_batch(self, images: Sequence[Any], post_process: bool = False) -> list[np.ndarray]:
        """:meth:`infer` for several images in one network call (each keeps its own resolution)."""
        tensors = [image_to_tensor(image) for image in images]
        if not tensors:
            return []
        net_in = torch.cat([F.interpolate(t[None], size=(self.height, self.width), mode="bilinear",
                                          align_corners=False, antialias=True) for t in tensors])
        scaled = disp_to_depth(self.predict_disp(net_in, post_process), self.min_depth, self.max_depth)[0]
        if not bool(torch.isfinite(scaled).all()):
            raise InferenceError("the network predicted non-finite depth (NaN/inf) for this input; the weights or "
                                 "the input are broken (inputs must be images with values in [0, 1])")
        out = []
        for t, s in zip(tensors, scaled.float().cpu(), strict=True):
            full = F.interpolate(s[None], size=tuple(t.shape[-2:]), mode="bilinear", align_corners=False)
            out.append((1.0 / full[0, 0]).numpy().astype(np.float32))
        return out


def iter_inputs(inputs: Sequence[str | Path], skipped: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, H×W×3 uint8) for every image file, image in a folder (sorted) and frame of a video.

    With a ``skipped`` list, an image that cannot be read is recorded there ("path: reason") and passed
    over instead of ending the whole job; without one, its :class:`DataError` propagates.
    """
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"input not found: {path}")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            for f in files:
                yield from _read_or_skip(f, skipped)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        else:
            yield from _read_or_skip(path, skipped)


def _read_or_skip(path: Path, skipped: list[str] | None) -> Iterator[tuple[str, np.ndarray]]:
    try:
        rgb = np.asarray(read_rgb(path))
    except DataError as err:
        if skipped is None:
            raise
        skipped.append(f"{path}: {err}")
        return
    yield path.stem, rgb


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video {path}")
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{path.stem}_{index:06d}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise DataError(f"video {path} has no readable frames")


def count_inputs(inputs: Sequence[str | Path]) -> int:
    """How many frames :func:`iter_inputs` will yield (images counted by name, videos by their header)."""
    total = 0
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            total += sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            import cv2

            cap = cv2.VideoCapture(str(path))
            total += max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            cap.release()
        else:
            total += 1
    return total


def batched(frames: Iterator[tuple[str, np.ndarray]], size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Groups of up to ``size`` consecutive frames."""
    group: list[tuple[str, np.ndarray]] = []
    for frame in frames:
        group.append(frame)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def predict_to_folder(model: DepthModel, inputs: Sequence[str | Path], out: Path, panel: bool = False,
                      post_process: bool = False, progress: bool = True, batch_size: int = PREDICT_BATCH,
                      compile: bool | None = None, skipped: list[str] | None = None) -> list[Path]:
    """Write ``<name>_depth.npy`` and ``<name>_disp.png`` (magma) per input (+ ``<name>_panel.png``).

    Frames go through the network ``batch_size`` at a time; ``compile=None`` compiles the network when
    the job is long enough to amortise it (:data:`COMPILE_AFTER_FRAMES`). With a ``skipped`` list,
    unreadable images are listed there and skipped (see :func:`iter_inputs`); if every input was
    unreadable that is still an error.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file, not a folder; name a folder for the depth maps")
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = count_inputs(inputs)
    if compile is None:
        compile = isinstance(model, DepthModel) and type(model) is DepthModel and \
            total >= COMPILE_AFTER_FRAMES.get(model.device.type, 10**9)
    if compile:
        model.compile()
    written = []
    with tqdm(total=total, desc="predict", unit="img", disable=not progress) as bar:
        for group in batched(iter_inputs(inputs, skipped), batch_size):
            depths = model.infer_batch([rgb for _, rgb in group], post_process=post_process)
            out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
            for (name, rgb), depth in zip(group, depths, strict=True):
                written.append(_write_prediction(out, name, rgb, depth, panel))
            bar.update(len(group))
    if skipped and not written:
        raise DataError(f"no readable image among the inputs ({len(skipped)} skipped; first: {skipped[0]})")
    return written


def _write_prediction(out: Path, name: str, rgb: np.ndarray, depth: np.ndarray, panel: bool) -> Path:
    np.save(out / f"{name}_depth.npy", depth)
    colour = colorize_disparity(1.0 / depth)
    Image.fromarray(colour).save(out / f"{name}_disp.png")
    if panel:
        Image.fromarray(np.concatenate([rgb, colour], axis=1)).save(out / f"{name}_panel.png")
    return out / f"{name}_depth.npy"
