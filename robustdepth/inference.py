"""One call from an image to a depth map, and batch prediction over files, folders and videos.

>>> model = robustdepth.load("runs/demo/baseline")       # doctest: +SKIP
>>> depth = model.infer("frame.png")                      # H×W float32 metres, input resolution
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustdepth.config import config_from_dict
from robustdepth.data.base import DataError, read_rgb
from robustdepth.data.folder import IMAGE_SUFFIXES
from robustdepth.evaluation import post_process_disparity
from robustdepth.networks import DepthNet, disp_to_depth
from robustdepth.training.checkpoint import load_checkpoint
from robustdepth.training.distributed import resolve_device
from robustdepth.visualize import colorize_disparity

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def image_to_tensor(image: Any) -> torch.Tensor:
    """Path / PIL image / H×W×3 uint8 array / 3×H×W float tensor in [0, 1] → 3×H×W float tensor."""
    if isinstance(image, (str, Path)):
        image = read_rgb(Path(image))
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be H×W×3 (RGB), got shape {image.shape}")
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / scale).permute(2, 0, 1)
    if not torch.is_tensor(image) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"image must be a path, PIL image, H×W×3 array or 3×H×W tensor; got {shape}")
    return image.float()


@dataclass
class DepthModel:
    """A trained depth network ready for inference (eval mode, configured resolution and depth range)."""

    net: DepthNet
    height: int
    width: int
    min_depth: float
    max_depth: float
    device: torch.device
    precision: str = "fp32"
    config: Any = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, device: str = "auto", precision: str = "fp32") -> DepthModel:
        ckpt = load_checkpoint(checkpoint)
        cfg = config_from_dict(ckpt["config"])
        net = DepthNet(cfg.model.num_layers, scales=list(cfg.model.scales))
        net.load_state_dict(ckpt["models"]["depth"])
        dev = resolve_device(device)
        return cls(net.to(dev).eval(), cfg.data.height, cfg.data.width, float(cfg.model.min_depth),
                   float(cfg.model.max_depth), dev, precision, cfg)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            return self.net(images).disp[0].float()

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
        tensor = image_to_tensor(image)
        h, w = tensor.shape[-2:]
        net_in = F.interpolate(tensor[None], size=(self.height, self.width), mode="bilinear",
                               align_corners=False, antialias=True)
        scaled = disp_to_depth(self.predict_disp(net_in, post_process), self.min_depth, self.max_depth)[0]
        scaled = F.interpolate(scaled, size=(h, w), mode="bilinear", align_corners=False)
        return (1.0 / scaled[0, 0]).cpu().numpy().astype(np.float32)


def iter_inputs(inputs: Sequence[str | Path]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, H×W×3 uint8) for every image file, image in a folder (sorted) and frame of a video."""
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"input not found: {path}")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            for f in files:
                yield f.stem, np.asarray(read_rgb(f))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        else:
            yield path.stem, np.asarray(read_rgb(path))


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


def predict_to_folder(model: DepthModel, inputs: Sequence[str | Path], out: Path, panel: bool = False,
                      post_process: bool = False, progress: bool = True) -> list[Path]:
    """Write ``<name>_depth.npy`` and ``<name>_disp.png`` (magma) per input (+ ``<name>_panel.png``)."""
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rgb in tqdm(iter_inputs(inputs), desc="predict", unit="img", disable=not progress):
        depth = model.infer(rgb, post_process=post_process)
        np.save(out / f"{name}_depth.npy", depth)
        colour = colorize_disparity(1.0 / depth)
        Image.fromarray(colour).save(out / f"{name}_disp.png")
        written.append(out / f"{name}_depth.npy")
        if panel:
            Image.fromarray(np.concatenate([rgb, colour], axis=1)).save(out / f"{name}_panel.png")
    return written
