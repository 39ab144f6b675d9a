"""Which torch device a preference names: shared by training, inference, evaluation and the providers."""

from __future__ import annotations

import torch


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this process's GPU when there is one, else the CPU."""
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={preference!r} but CUDA is not available here; use train.device=cpu")
    return device


__all__ = ["resolve_device"]
