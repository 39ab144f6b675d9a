"""robustdepth: self-supervised monocular depth that stays accurate at night and in rain, fog and snow.

One-call inference::

    import robustdepth
    model = robustdepth.load("runs/demo/baseline/checkpoints/last.pt")
    depth = model.infer("frame.png")          # H×W metres (up to scale for monocular models)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from robustdepth._version import __version__

if TYPE_CHECKING:
    from robustdepth.inference import DepthModel


def load(checkpoint: Any, device: str = "auto", precision: str = "auto", pick: str = "last",
         **kwargs: Any) -> DepthModel:
    """Load a trained depth model from a checkpoint (file or run directory) for inference, on the fastest safe
    path: channels_last, and bf16 autocast where the device has native bf16 (``precision="auto"``; depth within
    ~1 % of fp32, AbsRel within 0.001, docs/results/speed.md). ``precision="fp32"`` reproduces a checkpoint's
    evaluation exactly (``robustdepth eval`` and the benchmarks use it). A pipeline run directory loads its
    final stage (``student/``); ``pick="best"`` loads the run's ``checkpoints/best.pt`` (``train.keep_best``)."""
    from robustdepth.checkpoint import pick_checkpoint
    from robustdepth.inference import DepthModel

    path = pick_checkpoint(checkpoint, pick) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    return DepthModel.from_checkpoint(path, device=device, precision=precision, **kwargs)


def predict(checkpoint: Any, inputs: Any, out: Any, formats: Any = ("npy", "color"), precision: str = "auto",
            **kwargs: Any) -> list[dict]:
    """``robustdepth predict`` from Python: write the chosen formats (npy, png16, gray, color), optional video
    and point clouds for ``inputs``; returns one ``{format: path}`` dict per frame
    (robustdepth.outputs.predict_outputs). ``checkpoint`` may be a loaded model."""
    from robustdepth.outputs import predict_outputs

    model = load(checkpoint, precision=precision) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    return predict_outputs(model, inputs, out, formats=formats, **kwargs)


__all__ = ["__version__", "load", "predict"]
