"""``robustdepth app CKPT [CKPT2]``: a browser demo of robustness (Gradio, extra ``robustdepth[app]``).

Upload a frame or pick one (the checkpoint's world test frames, ``--frames`` files or folders), choose a
condition (clear, night, rain, fog, snow) and a severity: the frame goes through the same image-space
translator the training uses (:func:`robustdepth.degrade.translate`) and each model's depth of the
translated frame is shown side by side, plus a grid of every condition × model. The first model's depth
downloads as a 16-bit PNG (metres × 256, KITTI's convention), an 8-bit grayscale PNG (near = bright) and a
float32 ``.npy``. The server listens on 127.0.0.1 unless ``--host`` says otherwise; nothing is fetched.

The image work is plain functions (:func:`degrade_frame`, :func:`depth_views`, :func:`condition_grid`) so it is
tested without a browser; :func:`build_app` only wires them to Gradio components.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

CONDITIONS = ("clear", "night", "rain", "fog", "snow")
MAX_EXAMPLES = 8
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class LoadedModel:
    """A named depth model for the app."""

    name: str
    model: Any  # robustdepth.inference.DepthModel


def _load_one(path: str, device: str) -> Any:
    p = Path(path)
    if (p / "model.safetensors").is_file() and (p / "config.json").is_file():
        from robustdepth.hub import from_pretrained

        return from_pretrained(p, device=device)
    from robustdepth.inference import DepthModel

    return DepthModel.from_checkpoint(p, device=device, precision="fp32")


def _model_name(path: str) -> str:
    p = Path(path).resolve()
    if p.is_file():
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p.name


def load_models(checkpoints: list[str], device: str = "auto") -> list[LoadedModel]:
    """Checkpoints, run directories or Hub directories → named fp32 models (names: the run folders)."""
    names: list[str] = []
    for path in checkpoints:
        name = _model_name(path)
        names.append(name if name not in names else f"{name} ({len(names) + 1})")
    return [LoadedModel(name, _load_one(path, device)) for name, path in zip(names, checkpoints, strict=True)]


def to_rgb_array(image: Any) -> np.ndarray:
    """Uploaded image (numpy from Gradio, PIL, or path) → H×W×3 uint8."""
    from robustdepth.inference import image_to_tensor

    tensor = image_to_tensor(image)
    return (tensor.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def degrade_frame(rgb: np.ndarray, condition: str, severity: float, seed: int = 0) -> np.ndarray:
    """The frame under ``condition`` at ``severity`` (``clear`` returns it unchanged); deterministic per seed."""
    from robustdepth.degrade import translate

    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    if condition == "clear" or severity <= 0:
        return rgb
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    out = translate(images, condition, float(severity), generator=torch.Generator().manual_seed(seed))
    return (out[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def depth_views(models: list[LoadedModel], rgb: np.ndarray) -> list[np.ndarray]:
    """Each model's depth (H×W float32 metres) of one frame."""
    return [np.asarray(m.model.infer(rgb), dtype=np.float32) for m in models]


def colorize(depth: np.ndarray) -> np.ndarray:
    from robustdepth.visualize import colorize_depth

    return colorize_depth(depth)


def condition_grid(models: list[LoadedModel], rgb: np.ndarray, severity: float) -> np.ndarray:
    """Rows: every condition; columns: the translated frame, then each model's coloured depth."""
    rows = []
    for condition in CONDITIONS:
        frame = degrade_frame(rgb, condition, severity)
        rows.append(np.concatenate([frame, *[colorize(d) for d in depth_views(models, frame)]], axis=1))
    return np.concatenate(rows, axis=0)


def depth_downloads(depth: np.ndarray, folder: Path, stem: str) -> list[Path]:
    """``stem_depth16.png`` (uint16, metres × 256, 0 = invalid), ``stem_gray.png`` (8-bit, near = bright by
    inverse depth scaled to its maximum) and ``stem_depth.npy`` (float32 metres)."""
    folder.mkdir(parents=True, exist_ok=True)
    finite = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)
    png16 = folder / f"{stem}_depth16.png"
    Image.fromarray(np.clip(finite * 256.0, 0, 65535).astype(np.uint16)).save(png16)
    inverse = np.where(finite > 0, 1.0 / np.maximum(finite, 1e-6), 0.0)
    gray = folder / f"{stem}_gray.png"
    Image.fromarray((255.0 * inverse / max(float(inverse.max()), 1e-12)).astype(np.uint8)).save(gray)
    npy = folder / f"{stem}_depth.npy"
    np.save(npy, depth.astype(np.float32))
    return [png16, gray, npy]


def example_frames(models: list[LoadedModel], extra: list[str] | None = None) -> list[str]:
    """Frames to pick from: ``extra`` files/folders, then the first model's world test frames when present."""
    frames: list[Path] = []
    for item in extra or []:
        p = Path(item)
        frames += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    cfg = getattr(models[0].model, "config", None) if models else None
    root = Path(str(cfg.data.root)) if cfg is not None else None
    if root is not None and (root / "test").is_dir():
        frames += sorted((root / "test").glob("*/clear/image/*.png"))[::5]
    return [str(f) for f in frames[:MAX_EXAMPLES]]


def build_app(models: list[LoadedModel], frames: list[str] | None = None) -> Any:
    """The Gradio Blocks app (element ids ``frame``, ``condition``, ``severity``, ``run``, ``degraded``,
    ``depth-0``/``depth-1``, ``grid``, ``downloads`` for scripted use and the browser test)."""
    import gradio as gr

    out_dir = Path(tempfile.mkdtemp(prefix="robustdepth_app_"))

    def run(image: Any, condition: str, severity: float) -> list[Any]:
        if image is None:
            raise gr.Error("upload or pick a frame first")
        rgb = to_rgb_array(image)
        frame = degrade_frame(rgb, condition, severity)
        depths = depth_views(models, frame)
        files = depth_downloads(depths[0], out_dir / f"{condition}_{severity:.2f}", f"{models[0].name}_{condition}")
        return [frame, *[colorize(d) for d in depths], condition_grid(models, rgb, severity), [str(f) for f in files]]

    with gr.Blocks(title="robustdepth: depth under night, rain, fog and snow") as app:
        gr.Markdown("## robustdepth — depth under night, rain, fog and snow\nUpload or pick a frame, choose a "
                    "condition and severity: the frame is translated as in training and each model's depth shown.")
        with gr.Row():
            frame = gr.Image(type="numpy", label="Frame (upload)", elem_id="frame", sources=["upload", "clipboard"])
            with gr.Column():
                condition = gr.Radio(list(CONDITIONS), value="clear", label="Condition", elem_id="condition")
                severity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Severity", elem_id="severity")
                button = gr.Button("Estimate depth", variant="primary", elem_id="run")
        if frames:
            gr.Examples(examples=[[f] for f in frames], inputs=[frame], label="Pick a frame")
        with gr.Row():
            degraded = gr.Image(label="Translated frame", elem_id="degraded", format="png", interactive=False)
            depth_images = [gr.Image(label=f"{m.name}: depth", elem_id=f"depth-{i}", format="png", interactive=False)
                            for i, m in enumerate(models)]
        grid = gr.Image(label="Every condition × model", elem_id="grid", format="png", interactive=False)
        downloads = gr.File(label=f"Download {models[0].name}'s depth (16-bit PNG, grayscale PNG, .npy)",
                            elem_id="downloads", file_count="multiple", interactive=False)
        outputs = [degraded, *depth_images, grid, downloads]
        button.click(run, [frame, condition, severity], outputs)
        condition.change(run, [frame, condition, severity], outputs)
    return app


def cmd_app(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        from robustdepth.config import ConfigError

        raise ConfigError("robustdepth app needs Gradio: pip install 'robustdepth[app]'") from None
    if len(args.checkpoints) > 2:
        from robustdepth.config import ConfigError

        raise ConfigError(f"robustdepth app compares one or two models, got {len(args.checkpoints)} checkpoints")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    models = load_models(list(args.checkpoints), device=args.device)
    app = build_app(models, example_frames(models, args.frames))
    app.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=False)
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("app", help="browser demo: depth of 1–2 models under night/rain/fog/snow", description=(
        "Serve a Gradio app on 127.0.0.1: upload or pick a frame, apply the night/rain/fog/snow translators at a "
        "severity, compare the models' depth side by side per condition, download 16-bit/grayscale/npy depth. "
        "Needs: pip install 'robustdepth[app]'."))
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="one or two checkpoints / run or Hub directories")
    p.add_argument("--frames", nargs="*", default=[], help="image files or folders offered as examples")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_app)
