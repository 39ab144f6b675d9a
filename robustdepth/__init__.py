"""robustdepth: self-supervised monocular depth that stays accurate at night and in rain, fog and snow.

One-call inference::

    import robustdepth
    model = robustdepth.load("runs/demo/baseline/checkpoints/last.pt")
    depth = model.infer("frame.png")          # H×W metres (up to scale for monocular models)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from robustdepth.inference import DepthModel


def load(checkpoint: Any, device: str = "auto", precision: str = "auto", **kwargs: Any) -> DepthModel:
    """Load a trained depth model from a checkpoint (file or run directory) for inference, on the fastest safe
    path: channels_last, and bf16 autocast where the device has native bf16 (``precision="auto"``; depth within
    ~1 % of fp32, AbsRel within 0.001, docs/results/speed.md). ``precision="fp32"`` reproduces a checkpoint's
    evaluation exactly (``robustdepth eval`` and the benchmarks use it)."""
    from robustdepth.inference import DepthModel

    return DepthModel.from_checkpoint(checkpoint, device=device, precision=precision, **kwargs)


__all__ = ["__version__", "load"]
