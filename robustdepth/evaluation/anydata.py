"""``robustdepth eval`` for any checkpoint on any dataset or folder (zero-shot, cross-dataset).

What this module adds to :func:`robustdepth.evaluation.runner.evaluate_model`:

- **protocol flags**: depth range, scaling (median / none / fixed factor) and crop set on the command line on
  top of any registered protocol (``generic`` is the neutral start for folders: 0.1–80 m, median, no crop);
- **crop to aspect**: frames (and their GT, identically) centre-cropped to the model's aspect ratio before
  the resize, instead of squashing a 4:3 frame into a 10:3 network;
- **mixed frame sizes**: GT maps stay a list per batch (no stacking), so a folder of several resolutions
  evaluates at any batch size;
- **the constant-depth floor** scored in the same pass (one depth everywhere; with median scaling it becomes
  each image's GT median), so every table states what a model must beat;
- **results per model × dataset × protocol**, with per-frame metrics, under ``RUN/eval/`` so evaluating a
  second dataset never overwrites the first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from robustdepth.data.base import DataError, FrameItem, FrameSequence, color_key
from robustdepth.evaluation.evaluate import DepthEvaluator
from robustdepth.evaluation.protocols import EvalProtocol

# The constant predictor's depth; with median scaling any value gives the same metrics.
CONSTANT_DEPTH = 10.0


# ------------------------------------------------------------------------------------------ protocol flags


@dataclass(frozen=True)
class ProtocolFlags:
    """Protocol fields set on the command line (None = keep the base protocol's value).

    ``scale`` is the fixed factor: giving it selects ``scaling="fixed"`` unless ``scaling`` says otherwise.
    """

    min_depth: float | None = None
    max_depth: float | None = None
    scaling: str | None = None
    scale: float | None = None
    crop: str | None = None


def apply_protocol_flags(base: EvalProtocol, flags: ProtocolFlags) -> EvalProtocol:
    """``base`` with the flags' fields replaced; the result is validated by ``EvalProtocol`` itself.

    ``scaling="none"`` resets the fixed factor to 1 (a "none" protocol cannot carry one); ``scaling="fixed"``
    needs a factor, from ``scale`` or the base protocol.
    """
    changes: dict[str, Any] = {}
    if flags.min_depth is not None:
        changes["min_depth"] = float(flags.min_depth)
    if flags.max_depth is not None:
        changes["max_depth"] = float(flags.max_depth)
    if flags.crop is not None:
        changes["crop"] = flags.crop
    scaling = flags.scaling or ("fixed" if flags.scale is not None else None)
    if scaling is not None:
        changes["scaling"] = scaling
        if scaling == "none":
            if flags.scale not in (None, 1.0):
                raise ValueError(f"--scaling none contradicts --scale {flags.scale}")
            changes["fixed_scale"] = 1.0
    if flags.scale is not None:
        changes["fixed_scale"] = float(flags.scale)
    return replace(base, **changes) if changes else base


# ------------------------------------------------------------------------------------------- crop to aspect


def centre_box(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred box of ``aspect`` = width / height."""
    if width / height > aspect:  # too wide: crop columns
        new_w = max(1, round(height * aspect))
        return 0, (width - new_w) // 2, height, new_w
    new_h = max(1, round(width / aspect))
    return (height - new_h) // 2, 0, new_h, width


class AspectCroppedSequence(FrameSequence):
    """A sequence whose frames and GT are centre-cropped to ``aspect`` (width / height).

    The box is computed from each map's own size, so an image and its same-sized GT get the same pixels.
    ``intrinsics()`` shifts the principal point by the box of the first frame (every frame of a sequence
    shares K, hence its size).
    """

    def __init__(self, inner: FrameSequence, aspect: float) -> None:
        self.inner = inner
        self.aspect = aspect
        self.name = inner.name
        self._K: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return self.inner.num_frames

    def image_path(self, index: int, condition: str) -> Path:
        return self.inner.image_path(index, condition)

    def load_image(self, index: int, condition: str) -> Image.Image:
        img = self.inner.load_image(index, condition)
        top, left, h, w = centre_box(img.height, img.width, self.aspect)
        return img.crop((left, top, left + w, top + h))

    def depth_gt(self, index: int, condition: str) -> np.ndarray | None:
        depth = self.inner.depth_gt(index, condition)
        if depth is None:
            return None
        top, left, h, w = centre_box(depth.shape[0], depth.shape[1], self.aspect)
        return np.ascontiguousarray(depth[top:top + h, left:left + w])

    def intrinsics(self) -> np.ndarray:
        if self._K is None:
            K = self.inner.intrinsics().astype(np.float64).copy()
            with Image.open(self.inner.image_path(0, "clear")) as img:
                top, left, _, _ = centre_box(img.height, img.width, self.aspect)
            K[0, 2] -= left
            K[1, 2] -= top
            self._K = K
        return self._K

    def pose(self, index: int) -> np.ndarray | None:
        return self.inner.pose(index)


def crop_items_to_aspect(items: Sequence[FrameItem], aspect: float) -> list[FrameItem]:
    """The same items, each sequence wrapped once in :class:`AspectCroppedSequence`."""
    wrapped: dict[int, AspectCroppedSequence] = {}
    out = []
    for item in items:
        seq = wrapped.setdefault(id(item.sequence), AspectCroppedSequence(item.sequence, aspect))
        out.append(replace(item, sequence=seq))
    return out


# ------------------------------------------------------------------------------------------------ the loop


def collate_keep_gt(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Default collation for everything but ``depth_gt``, which stays a list (frames may differ in size)."""
    from torch.utils.data import default_collate

    gts = [sample.pop("depth_gt") for sample in samples]
    batch = default_collate(samples)
    batch["depth_gt"] = gts
    return batch


@dataclass
class EvalOutcome:
    """The model's evaluator and the constant-depth floor's, over the same frames."""

    model: DepthEvaluator
    floor: DepthEvaluator


def build_eval_dataset(cfg: Any, height: int, width: int, split: str, crop_to_aspect: bool = False) -> Any:
    """The evaluation dataset of ``split`` with frames resized to the network's ``height`` × ``width``
    (and centre-cropped to its aspect first with ``crop_to_aspect``)."""
    from robustdepth.data import build_dataset

    eval_cfg = copy.deepcopy(cfg)
    eval_cfg.data.height, eval_cfg.data.width = height, width
    dataset = build_dataset(eval_cfg, split, train=False)
    if crop_to_aspect:
        dataset.items = crop_items_to_aspect(dataset.items, width / height)
    return dataset


def evaluate_any(model: Any, cfg: Any, protocol: EvalProtocol, split: str | None = None, max_frames: int = 0,
                 post_process: bool | None = None, crop_to_aspect: bool = False, batch_size: int | None = None,
                 progress: bool = True) -> EvalOutcome:
    """Predict every frame of ``split`` (resized to the model's input size) and score it and the constant
    predictor under ``protocol``. Frames may be of any and mixed sizes."""
    dataset = build_eval_dataset(cfg, model.height, model.width, split or cfg.eval.split, crop_to_aspect)
    return score_dataset(model, dataset, protocol, batch_size or cfg.eval.batch_size, max_frames=max_frames,
                         post_process=protocol.post_process if post_process is None else post_process,
                         num_workers=min(2, cfg.data.num_workers), progress=progress)


def score_dataset(model: Any, dataset: Any, protocol: EvalProtocol, batch_size: int, max_frames: int = 0,
                  post_process: bool = False, num_workers: int = 0, progress: bool = False) -> EvalOutcome:
    """The loop of :func:`evaluate_any` over a built dataset. ``model`` needs ``predict_depth(images,
    post_process)``. The loader draws its seed from its own generator, so scoring leaves the global RNG
    (and hence a training run it interrupts) untouched."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_keep_gt, generator=torch.Generator())
    outcome = EvalOutcome(DepthEvaluator(protocol), DepthEvaluator(protocol))
    limit = min(max_frames or len(dataset), len(dataset))
    with tqdm(total=limit, desc=f"eval {protocol.name}", unit="img", disable=not progress) as bar, \
            torch.inference_mode():
        for batch in loader:
            depth = model.predict_depth(batch[color_key(0)], post_process=post_process).float().cpu()
            for i in range(depth.shape[0]):
                if len(outcome.model) >= limit:
                    break
                _score_frame(outcome, dataset.items[int(batch["index"][i])], batch["depth_gt"][i][0].numpy(),
                             depth[i, 0].numpy())
                bar.update(1)
            if len(outcome.model) >= limit:
                break
    return outcome


def _score_frame(outcome: EvalOutcome, item: FrameItem, gt: np.ndarray, pred: np.ndarray) -> None:
    """Score one frame for the model and for the constant predictor (same GT, same protocol)."""
    name = f"{item.sequence.name}/{item.condition}/{item.index:06d}"
    try:
        outcome.model.add(gt, pred, condition=item.condition, name=name)
        outcome.floor.add(gt, np.full_like(pred, CONSTANT_DEPTH), condition=item.condition, name=name)
    except ValueError as err:  # GT with no valid pixel under the protocol
        raise DataError(f"evaluation frame {name}: {' '.join(str(err).split())}") from None


# ------------------------------------------------------------------------------------------------ results


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory of a checkpoint argument (a run directory itself, or RUN/checkpoints/FILE.pt)."""
    path = Path(checkpoint).resolve()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def protocol_tag(protocol: EvalProtocol, crop_to_aspect: bool = False) -> str:
    """The protocol's name, plus a short hash of its fields when flags changed them and ``-aspect`` with
    ``--crop-to-aspect``: two evaluations under different settings never share a results file."""
    from robustdepth.evaluation.protocols import PROTOCOLS

    tag = protocol.name
    if PROTOCOLS.get(protocol.name) != protocol:
        tag += "-" + hashlib.sha1(json.dumps(asdict(protocol), sort_keys=True).encode()).hexdigest()[:6]
    return tag + ("-aspect" if crop_to_aspect else "")


def results_path(checkpoint: str | Path, checkpoint_file: Path, cfg: Any, split: str,
                 protocol: EvalProtocol, crop_to_aspect: bool = False) -> Path:
    """``RUN/eval/<checkpoint>__<dataset>-<root name>-<root hash>__<split>__<protocol tag>.json``: one file per
    model × dataset × protocol, so evaluations of one run on several datasets sit side by side (the hash of the
    absolute root tells apart two folders of the same name; :func:`protocol_tag` two settings of a protocol)."""
    root = Path(str(cfg.data.root)).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:6]
    dataset = f"{cfg.data.dataset}-{_slug(root.name)}-{digest}"
    parts = (checkpoint_file.stem, dataset, split, protocol_tag(protocol, crop_to_aspect))
    return run_dir_of(checkpoint) / "eval" / ("__".join(_slug(p) for p in parts) + ".json")


def per_frame_records(outcome: EvalOutcome) -> list[dict[str, Any]]:
    """Each frame's metrics, with the constant predictor's AbsRel beside them."""
    return [{**frame, "constant_abs_rel": floor["abs_rel"]}
            for frame, floor in zip(outcome.model.per_frame(), outcome.floor.per_frame(), strict=True)]


def evaluate_and_write(model: Any, cfg: Any, protocol: EvalProtocol, checkpoint: str | Path, checkpoint_file: Path,
                       split: str | None = None, out: str | Path | None = None, max_frames: int = 0,
                       post_process: bool | None = None, crop_to_aspect: bool = False,
                       batch_size: int | None = None) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Evaluate (:func:`evaluate_any`) and write the results file (default :func:`results_path`).

    The file holds the per-condition summary, the protocol, and under ``extra``: the checkpoint, split,
    data section, ``crop_to_aspect``, ``constant_floor`` (the constant predictor's summary) and ``frames``
    (every frame's metrics). Returns (model summary, floor summary, path).
    """
    from robustdepth.config import to_dict
    from robustdepth.evaluation.evaluate import write_results

    split = split or cfg.eval.split
    outcome = evaluate_any(model, cfg, protocol, split=split, max_frames=max_frames, post_process=post_process,
                           crop_to_aspect=crop_to_aspect, batch_size=batch_size)
    summary, floor = outcome.model.summary(), outcome.floor.summary()
    path = Path(out) if out else results_path(checkpoint, checkpoint_file, cfg, split, protocol, crop_to_aspect)
    floor_rows = {key: value for key, value in floor.items() if key not in ("counts", "scale_ratio")}
    write_results(path, summary, protocol, extra={
        "checkpoint": str(checkpoint_file), "split": split, "data": to_dict(cfg)["data"],
        "crop_to_aspect": crop_to_aspect, "constant_floor": floor_rows, "frames": per_frame_records(outcome)})
    return summary, floor, path
