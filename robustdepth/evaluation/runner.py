"""Evaluate a trained model on a dataset split under a protocol (the engine of ``robustdepth eval``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from robustdepth.data import build_dataset
from robustdepth.data.base import DataError, color_key
from robustdepth.evaluation.evaluate import DepthEvaluator
from robustdepth.evaluation.protocols import EvalProtocol

if TYPE_CHECKING:
    from robustdepth.inference import DepthModel


def evaluate_model(model: DepthModel, cfg: Any, protocol: EvalProtocol, split: str | None = None,
                   max_frames: int = 0, post_process: bool | None = None,
                   progress: bool = True) -> DepthEvaluator:
    """Predict every frame of ``split`` at the model's resolution and score it against its GT.

    Each frame is labelled with its condition (md4all-style per-condition aggregation). Flip
    post-processing follows the protocol unless ``post_process`` overrides it.
    """
    dataset = build_dataset(cfg, split or cfg.eval.split, train=False)
    if dataset.height != model.height or dataset.width != model.width:
        raise ValueError(f"data resolution {dataset.height}×{dataset.width} differs from the model's "
                         f"{model.height}×{model.width}")
    post = protocol.post_process if post_process is None else post_process
    loader = DataLoader(dataset, batch_size=cfg.eval.batch_size, shuffle=False,
                        num_workers=min(2, cfg.data.num_workers))
    evaluator = DepthEvaluator(protocol)
    limit = max_frames or len(dataset)
    with tqdm(total=limit, desc=f"eval {protocol.name}", unit="img", disable=not progress) as bar:
        _score(model, dataset, loader, evaluator, limit, post, bar)
    return evaluator


def _score(model: DepthModel, dataset: Any, loader: DataLoader, evaluator: DepthEvaluator, limit: int, post: bool,
           bar: Any) -> None:
    """Predict and score batches until ``limit`` frames are scored (the loop of :func:`evaluate_model`)."""
    for batch in loader:
        depth = model.predict_depth(batch[color_key(0)], post_process=post).cpu()
        for i in range(depth.shape[0]):
            if len(evaluator) >= limit:
                break
            idx = int(batch["index"][i])
            item = dataset.items[idx]
            name = f"{item.sequence.name}/{item.condition}/{item.index:06d}"
            try:
                evaluator.add(batch["depth_gt"][i, 0].numpy(), depth[i, 0].numpy(), condition=batch["condition"][i],
                              name=name)
            except ValueError as err:  # GT with no valid pixel (all NaN / 0 / out of range), or a bad prediction
                raise DataError(f"evaluation frame {name}: {' '.join(str(err).split())}") from None
            bar.update(1)
        if len(evaluator) >= limit:
            break


@torch.inference_mode()
def constant_median_baseline(cfg: Any, protocol: EvalProtocol, split: str | None = None) -> DepthEvaluator:
    """The trivial predictor: one depth everywhere (the protocol's per-image median scaling turns it into
    the GT median of each image) — the floor a learned model must clearly beat."""
    dataset = build_dataset(cfg, split or cfg.eval.split, train=False)
    evaluator = DepthEvaluator(protocol)
    for i in range(len(dataset)):
        sample = dataset[i]
        gt = sample["depth_gt"][0].numpy()
        evaluator.add(gt, torch.full((dataset.height, dataset.width), 10.0).numpy(), condition=sample["condition"])
    return evaluator
