"""torch.hub entry points (offline, from a local checkout)::

    model = torch.hub.load("/path/to/robustdepth", "robustdepth", checkpoint="runs/x", source="local")
    depth = model.infer("frame.png")

``checkpoint`` is a robustdepth checkpoint, a run directory, or a ``save_pretrained`` Hub directory.
Nothing is downloaded: robustdepth ships no weights (see ``robustdepth weights import`` for released ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

dependencies = ["torch", "numpy", "PIL", "safetensors", "omegaconf", "yaml"]


def robustdepth(checkpoint: str, device: str = "auto", precision: str = "fp32", **kwargs: Any) -> Any:
    """A ``DepthModel`` (``.infer(image) -> H×W depth``) from a checkpoint, run directory or Hub directory."""
    path = Path(checkpoint)
    if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
        from robustdepth.hub import from_pretrained

        return from_pretrained(path, device=device, precision=precision, **kwargs)
    from robustdepth.inference import DepthModel

    return DepthModel.from_checkpoint(path, device=device, precision=precision, **kwargs)
