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


def load(checkpoint: Any, device: str = "auto", **kwargs: Any) -> DepthModel:
    """Load a trained depth model from a checkpoint (file or run directory) for inference."""
    from robustdepth.inference import DepthModel

    return DepthModel.from_checkpoint(checkpoint, device=device, **kwargs)


__all__ = ["__version__", "load"]
