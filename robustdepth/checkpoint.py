"""Checkpoints that load anywhere and never run code.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values (config as a
dict, code version, step, model/optimiser/scheduler state, RNG states), loaded with
``weights_only=True``: a file that would need arbitrary unpickling is refused with a clear
message. Writes are atomic (temporary file + rename), so an interrupted save never leaves a
truncated checkpoint behind; the temporary file of a writer that was killed is removed by the next
trainer that owns the folder (:func:`remove_stale_temp_files`). A run directory whose ``last.pt`` is
missing or torn resumes from its newest intact step file (:func:`resolve_checkpoint`).
``export_safetensors`` writes the depth weights alone for other tools.

Which checkpoint a path names (:func:`pick_checkpoint`, :func:`final_stage`): a checkpoint file is itself; a run
directory of ``robustdepth train`` holds ``checkpoints/last.pt`` and, with ``train.keep_best``,
``checkpoints/best.pt`` (robustdepth.training.validation); a run directory of ``robustdepth pipeline`` holds one
folder per stage (``teacher/``, ``student/``) and means its final stage, ``student/``.

Shared infrastructure: training, inference, the frozen-model providers, evaluation and the benchmarks all read
and write checkpoints through this module, which imports nothing else of the package.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import re
import shutil
import subprocess
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "robustdepth-checkpoint/1"


class CheckpointError(ValueError):
    """A file that is not a loadable robustdepth checkpoint (the message names it and why)."""


def code_version() -> dict[str, str]:
    """Package version and, when run from a git checkout, the commit (for reproducibility)."""
    from robustdepth._version import __version__

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


_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)$")
_PICKLE_PROTOCOL_BYTE = 0x80  # legacy (non-zip) torch.save files start with a pickle PROTO opcode


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` files left in ``folder`` by writers that no longer run.

    :func:`atomic_save` removes its temporary file itself unless its process is killed mid-write
    (``kill -9``, power loss); such a file can be as large as a checkpoint. Files of live processes are
    kept (they may be writing now). Returns the removed paths.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and (int(match.group(1)) == os.getpid() or not _pid_alive(int(match.group(1)))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def step_files(folder: Path) -> list[Path]:
    """``step_XXXXXXX.pt`` files in ``folder``, oldest step first."""
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file a path names: the file itself, or a run directory's newest intact checkpoint.

    For a directory that is ``checkpoints/last.pt`` (or ``last.pt``); when it is missing or torn (a run
    killed during its first write of it) the newest step file that is a complete file, with a warning.
    Completeness is the zip's central directory (written last by ``torch.save``), so nothing is loaded twice.
    """
    path = final_stage(path)  # a pipeline run directory means its final stage (student/)
    if not path.is_dir():
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    last = folder / "last.pt"
    if last.is_file() and _complete(last):
        return last
    for candidate in reversed(step_files(folder)):
        if _complete(candidate):
            warnings.warn(f"{last} is {'torn' if last.is_file() else 'missing'}; using {candidate}", stacklevel=2)
            return candidate
    return last


def _complete(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _sniff(path: Path) -> str | None:
    """Why ``path`` cannot be a torch file (e.g. it is a PNG), or None when it may be one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"cannot open it: {err}"
    if not head:
        return "it is empty"
    if zipfile.is_zipfile(path) or head[0] == _PICKLE_PROTOCOL_BYTE:
        return None
    kinds = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
             b"%PDF": "a PDF", b"\x93NUMPY": "a NumPy .npy array", b"{": "JSON/text", b"ONNX": "an ONNX model"}
    kind = next((name for magic, name in kinds.items() if head.startswith(magic)), None)
    return f"it is {kind}, not a torch file" if kind else "it is not a torch file (neither zip nor pickle)"


def check_checkpoint_fields(data: dict[str, Any], path: Path) -> None:
    """Refuse a robustdepth-format file without the fields every consumer reads (config, depth weights)."""
    if not isinstance(data.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} has no stored config (key 'config'); it cannot be loaded or resumed")
    models = data.get("models")
    if not isinstance(models, dict) or not isinstance(models.get("depth"), dict):
        raise CheckpointError(f"checkpoint {path} has no depth-network weights (key 'models.depth')")


def non_finite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in ``state`` holding NaN or ±inf."""
    return [name for name, value in state.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def max_abs_weight(state: dict[str, Any]) -> float:
    """The largest |value| over the floating-point tensors of a state dict (inf when any is non-finite)."""
    largest = 0.0
    for value in state.values():
        if torch.is_tensor(value) and value.is_floating_point() and value.numel():
            largest = max(largest, float(value.detach().abs().max()))
    return largest if math.isfinite(largest) else math.inf


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a robustdepth checkpoint safely (``weights_only=True``), with errors that say what is wrong.

    ``path`` may be a run directory (see :func:`resolve_checkpoint`). The file must hold a stored config
    and depth weights; anything else raises :class:`CheckpointError` naming the file.
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    not_torch = _sniff(path)
    if not_torch:
        raise CheckpointError(f"cannot read checkpoint {path}: {not_torch}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled Python objects beyond tensors and plain values "
            f"(loading it could run code). Re-save its state_dict, or import Monodepth2 files with "
            f"robustdepth.networks.load_monodepth2_weights. Detail: {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file?): {detail}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        hint = " (it looks like a bare state_dict, e.g. Monodepth2's encoder.pth/depth.pth: use " \
               "robustdepth.networks.load_monodepth2_weights)" if isinstance(data, dict) else ""
        raise CheckpointError(f"{path} is not a robustdepth checkpoint (format {found!r}, expected {FORMAT!r}){hint}")
    check_checkpoint_fields(data, path)
    return data


def load_weights(net: nn.Module, state: dict[str, Any], source: Any, what: str) -> None:
    """``net.load_state_dict(state)`` with a one-line :class:`CheckpointError` when they do not fit
    (another architecture, renamed keys) or hold non-finite values."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"checkpoint {source}: the {what} weights are not finite ({len(bad)} tensor(s), "
                              f"e.g. {bad[0]}); use an earlier checkpoint")
    _check_shapes(net, state, source, what)
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {source}: the {what} weights do not fit this {what} network (missing "
            f"{len(result.missing_keys)} key(s), e.g. {result.missing_keys[:2]}; unexpected "
            f"{len(result.unexpected_keys)}, e.g. {result.unexpected_keys[:2]}); check model.num_layers / "
            f"model.scales against the checkpoint's config")


def _check_shapes(net: nn.Module, state: dict[str, Any], source: Any, what: str) -> None:
    own = net.state_dict()
    for key, value in state.items():
        if key in own and torch.is_tensor(value) and tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"checkpoint {source}: the {what} weights do not fit this {what} network ({key}: "
                f"{tuple(value.shape)} stored, {tuple(own[key].shape)} expected); another architecture? "
                f"(check model.num_layers against the checkpoint's config)")


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


# ---------------------------------------------------- which checkpoint a path names (run folders, best/last)

PICKS = ("last", "best")
# Stage folders of a pipeline run, final stage first (robustdepth.training.pipeline).
PIPELINE_STAGES = ("student", "teacher")


def final_stage(path: str | Path) -> Path:
    """A pipeline run directory (stage folders, no ``checkpoints/`` of its own) → its final stage's folder;
    any other path unchanged."""
    path = Path(path)
    if not path.is_dir() or (path / "checkpoints").is_dir() or (path / "last.pt").is_file():
        return path
    for stage in PIPELINE_STAGES:
        if (path / stage / "checkpoints").is_dir():
            return path / stage
    return path


def pick_checkpoint(path: str | Path, pick: str = "last") -> Path:
    """The checkpoint file or run directory to load for ``path`` and ``pick`` (``last`` | ``best``).

    ``last`` returns the (final-stage) run's newest intact checkpoint (``resolve_checkpoint``: ``last.pt``);
    ``best`` returns ``RUN/checkpoints/best.pt`` and is an error when the run kept none.
    """
    if pick not in PICKS:
        raise CheckpointError(f"checkpoint pick {pick!r}: use one of {PICKS}")
    run = final_stage(path)
    if pick == "last":
        return resolve_checkpoint(run)
    if run.is_file():
        raise CheckpointError(f"{run} is a checkpoint file; 'best' needs a run directory")
    folder = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    best = folder / "best.pt"
    if not best.is_file():
        raise CheckpointError(f"{run} has no best.pt: train it with train.val_every=N train.keep_best=true "
                              "(or use the last checkpoint)")
    return best
