"""Read PyTorch Lightning ``.ckpt`` files without running code.

md4all and ACDepth release Lightning checkpoints whose ``hyper_parameters`` hold a yacs/fvcore
``CfgNode`` (md4all's ``config.config.CfgNode``) and, in some Lightning versions, an ``AttributeDict``.
A plain ``torch.load(weights_only=False)`` would import those projects' modules and execute whatever
the pickle asks for. Here the file goes through torch's ``weights_only`` unpickler (tensors, plain
containers, numbers, strings) with ONE extra allow-listed kind: the dict-like config classes above,
each rebuilt as a plain ``OrderedDict`` by :class:`_PlainNode` — their class is never imported and no
method of theirs runs. Any other global (``os.system``, a model class, a lambda) stops the load with
:class:`UnsafeCheckpointError` naming it, before anything is called.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

__all__ = ["CONFIG_CLASSES", "UnsafeCheckpointError", "load_lightning_checkpoint", "to_plain"]

#: Dict-like classes found in released Lightning checkpoints; each is read as a plain mapping.
CONFIG_CLASSES = (
    "yacs.config.CfgNode",
    "fvcore.common.config.CfgNode",
    "config.config.CfgNode",  # md4all / ACDepth subclass fvcore's CfgNode in config/config.py
    "detectron2.config.config.CfgNode",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
)


class UnsafeCheckpointError(ValueError):
    """A checkpoint that needs code (a global outside the allow-list) to be read; nothing was run."""


class _PlainNode(OrderedDict):
    """Stand-in for an allow-listed config class: ``__new__`` returns a bare ``OrderedDict``.

    torch's restricted unpickler builds an allow-listed class with ``cls.__new__(cls)``, fills it with
    SETITEMS (allowed only on dict/OrderedDict) and applies the BUILD state (yacs' ``__immutable__``
    flags) to ``__dict__``. Returning an ``OrderedDict`` makes all three plain-container operations.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


def _allow_list() -> list[tuple[Any, str]]:
    return [(_PlainNode, name) for name in CONFIG_CLASSES]


def to_plain(value: Any) -> Any:
    """Mappings → ``dict``, tuples → lists, recursively; tensors and scalars unchanged (for JSON/YAML)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_plain(v) for v in value)
    return value


def load_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning ``.ckpt`` as plain data: ``state_dict`` (tensors) and ``hyper_parameters`` (dicts).

    Raises :class:`UnsafeCheckpointError` when the file needs any other global to be unpickled (the
    error names it; nothing was called) and ``ValueError`` when it is not a torch file at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_allow_list()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeCheckpointError(
            f"refusing {path}: it needs Python objects beyond tensors, plain containers and config nodes to be "
            f"read (nothing was executed). Detail: {detail}") from None
    except (RuntimeError, EOFError, OSError, KeyError, IndexError, TypeError) as err:
        raise ValueError(f"cannot read {path} as a torch checkpoint: {' '.join(str(err).split())[:300]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")
    return data
