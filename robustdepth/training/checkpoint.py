"""Checkpoints that load anywhere and never run code.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values (config as a
dict, code version, step, model/optimiser/scheduler state, RNG states), loaded with
``weights_only=True``: a file that would need arbitrary unpickling is refused with a clear
message. Writes are atomic (temporary file + rename), so an interrupted save never leaves a
truncated checkpoint behind. ``export_safetensors`` writes the depth weights alone for other tools.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

FORMAT = "robustdepth-checkpoint/1"


class CheckpointError(ValueError):
    """A file that is not a loadable robustdepth checkpoint (the message names it and why)."""


def code_version() -> dict[str, str]:
    """Package version and, when run from a git checkout, the commit (for reproducibility)."""
    from robustdepth import __version__

    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    return {"robustdepth": __version__, "git": commit, "torch": str(torch.__version__)}


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as RuntimeError("unexpected pos ...")
        free_mib = shutil.disk_usage(path.parent).free / 2**20
        raise OSError(f"could not write {path}: {err} ({free_mib:.0f} MiB free on that disk; "
                      f"the previous {path.name}, if any, is untouched)") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint; ``payload`` must hold only tensors / plain values (weights_only-loadable)."""
    atomic_save({"format": FORMAT, "version": code_version(), **payload}, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a robustdepth checkpoint safely (``weights_only=True``), with errors that say what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt" if (path / "checkpoints" / "last.pt").is_file() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled Python objects beyond tensors and plain values "
            f"(loading it could run code). Re-save its state_dict, or import Monodepth2 files with "
            f"robustdepth.networks.load_monodepth2_weights. Detail: {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file?): {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        hint = " (it looks like a bare state_dict, e.g. Monodepth2's encoder.pth/depth.pth: use " \
               "robustdepth.networks.load_monodepth2_weights)" if isinstance(data, dict) else ""
        raise CheckpointError(f"{path} is not a robustdepth checkpoint (format {found!r}, expected {FORMAT!r}){hint}")
    return data


def export_safetensors(checkpoint: dict[str, Any], out: Path) -> Path:
    """The depth network's weights as a safetensors file (config in its metadata, as JSON)."""
    import json

    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in checkpoint["models"]["depth"].items()}
    save_file(state, str(out), metadata={"config": json.dumps(checkpoint["config"]), "format": FORMAT})
    return out


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
