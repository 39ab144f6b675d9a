"""Validation during training and best-checkpoint selection (``train.val_every``, ``train.keep_best``).

Every ``train.val_every`` steps the depth network is scored on ``data.val_split`` under the run's own
protocol (``eval.protocol``), per condition, and the scalars go to TensorBoard as ``val/<condition>/<metric>``
(plus ``val/adverse/<metric>`` when the split has adverse conditions). With ``train.keep_best`` the checkpoint
whose selection metric is best so far is written to ``checkpoints/best.pt`` beside ``last.pt``; its step and
value are kept in ``checkpoints/best.json``, so a resumed run goes on comparing against the same best.

Why: the best checkpoint of a self-supervised run is often not the last (md4all keeps the top night-AbsRel
checkpoints); without validation every table depends on where a run happened to stop.

The selection metric ``train.best_metric`` is ``<row>/<metric>``: a condition (``night/abs_rel``), ``all``
or ``adverse`` (mean over the adverse conditions present); ``auto`` is ``adverse/abs_rel`` when the split has
an adverse condition, else ``all/abs_rel``. Lower is better except for the δ accuracies (``a1``–``a3``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustdepth.config import ConfigError
from robustdepth.evaluation.metrics import METRIC_NAMES
from robustdepth.evaluation.report import ADVERSE_CONDITIONS, adverse_mean

HIGHER_IS_BETTER = ("a1", "a2", "a3")
ADVERSE_ROW = "adverse"
AUTO = "auto"


def parse_best_metric(spec: str) -> tuple[str, str]:
    """``"night/abs_rel"`` → ("night", "abs_rel"); ``"auto"`` → ("auto", "abs_rel"). ConfigError otherwise."""
    if spec == AUTO:
        return AUTO, "abs_rel"
    row, _, metric = str(spec).partition("/")
    if not row or metric not in METRIC_NAMES:
        raise ConfigError(f"train.best_metric={spec!r}: use auto or ROW/METRIC with ROW a condition, all or "
                          f"adverse and METRIC one of {', '.join(METRIC_NAMES)}")
    return row, metric


def selection_value(summary: dict[str, Any], row: str, metric: str) -> tuple[str, float]:
    """The selection metric's (resolved row, value) in a validation summary (``auto`` resolved here)."""
    has_adverse = any(name in summary for name in ADVERSE_CONDITIONS)
    if row == AUTO:
        row = ADVERSE_ROW if has_adverse else "all"
    if row == ADVERSE_ROW:
        if not has_adverse:
            raise ConfigError(f"train.best_metric={row}/{metric}: the validation split has no adverse condition "
                              f"({', '.join(ADVERSE_CONDITIONS)}); use all/{metric} or a condition")
        return row, float(adverse_mean(summary)[metric])
    if row not in summary:
        raise ConfigError(f"train.best_metric={row}/{metric}: the validation split has no row {row!r}; "
                          f"it has {', '.join(k for k in summary if k not in ('counts', 'scale_ratio'))}")
    return row, float(summary[row][metric])


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Strictly better than ``best`` (None = nothing yet) in the metric's direction."""
    if best is None:
        return True
    return value > best if metric in HIGHER_IS_BETTER else value < best


def validation_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """TensorBoard scalars of a summary: ``val/<condition>/<metric>`` and ``val/adverse/<metric>``."""
    out = {f"val/{row}/{metric}": float(values[metric]) for row, values in summary.items()
           if row not in ("counts", "scale_ratio") for metric in METRIC_NAMES if metric in values}
    if any(name in summary for name in ADVERSE_CONDITIONS):
        out.update({f"val/{ADVERSE_ROW}/{k}": v for k, v in adverse_mean(summary).items()})
    return out


class _NetAsModel:
    """What the evaluation loop needs of a model, over the trainer's own depth network (no copy)."""

    def __init__(self, net: torch.nn.Module, cfg: Any, device: torch.device) -> None:
        self.net, self.device = net, device
        self.height, self.width = int(cfg.data.height), int(cfg.data.width)
        self.min_depth, self.max_depth = float(cfg.model.min_depth), float(cfg.model.max_depth)

    def predict_depth(self, images: torch.Tensor, post_process: bool = False) -> torch.Tensor:
        from robustdepth.evaluation.evaluate import post_process_disparity
        from robustdepth.networks.depth_net import disp_to_depth

        images = images.to(self.device)
        disp = self.net(images).disp[0]
        if post_process:
            disp = post_process_disparity(disp, self.net(images.flip(-1)).disp[0])
        return disp_to_depth(disp, self.min_depth, self.max_depth)[1]


@dataclass
class BestRecord:
    """The best validation so far: step, selection metric and value (``checkpoints/best.json``)."""

    step: int
    metric: str
    value: float


class Validator:
    """Runs validation every ``train.val_every`` steps and keeps ``best.pt`` (see the module docstring)."""

    def __init__(self, cfg: Any, run_dir: Path) -> None:
        from robustdepth.evaluation.anydata import build_eval_dataset
        from robustdepth.evaluation.protocols import get_protocol

        self.cfg = cfg
        self.every = int(cfg.train.val_every)
        self.keep_best = bool(cfg.train.keep_best)
        self.row, self.metric = parse_best_metric(str(cfg.train.best_metric))
        self.folder = Path(run_dir) / "checkpoints"
        try:
            self.protocol = get_protocol(str(cfg.eval.protocol))
        except KeyError as err:
            raise ConfigError(f"eval.protocol={cfg.eval.protocol!r} (used by validation): {err.args[0]}") from None
        self.dataset = build_eval_dataset(cfg, int(cfg.data.height), int(cfg.data.width), str(cfg.data.val_split))
        self.best = self._load_best()

    def _load_best(self) -> BestRecord | None:
        path = self.folder / "best.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return BestRecord(int(data["step"]), str(data["metric"]), float(data["value"]))

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def run(self, net: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Score ``net`` on the validation split (eval mode inside, the previous mode restored)."""
        from robustdepth.evaluation.anydata import score_dataset

        was_training = net.training
        net.eval()
        try:
            outcome = score_dataset(_NetAsModel(net, self.cfg, device), self.dataset, self.protocol,
                                    int(self.cfg.eval.batch_size), max_frames=int(self.cfg.train.val_max_frames),
                                    post_process=self.protocol.post_process)
        finally:
            net.train(was_training)
        return outcome.model.summary()

    def after_step(self, step: int, net: torch.nn.Module, device: torch.device, log: Any,
                   payload: Any) -> BestRecord | None:
        """At a due step: validate, log, and write ``best.pt`` when the selection metric improved.

        ``log(scalars, step)`` writes TensorBoard scalars; ``payload()`` builds the checkpoint to keep.
        Returns the new best record when one was written.
        """
        if not self.due(step):
            return None
        summary = self.run(net, device)
        row, value = selection_value(summary, self.row, self.metric)
        log({**validation_scalars(summary), f"val/selection/{row}/{self.metric}": value}, step)
        if not self.keep_best or not is_better(value, self.best.value if self.best else None, self.metric):
            return None
        from robustdepth.checkpoint import save_checkpoint

        save_checkpoint(self.folder / "best.pt", payload())
        self.best = BestRecord(step, f"{row}/{self.metric}", value)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / "best.json.tmp"
        tmp.write_text(json.dumps(self.best.__dict__) + "\n", encoding="utf-8")
        tmp.replace(self.folder / "best.json")
        return self.best


def make_validator(cfg: Any, run_dir: Path) -> Validator | None:
    """A :class:`Validator` when ``train.val_every > 0``; ``train.keep_best`` without it is an error."""
    if int(cfg.train.val_every) <= 0:
        if bool(cfg.train.keep_best):
            raise ConfigError("train.keep_best=true needs validation: set train.val_every=N (steps)")
        return None
    return Validator(cfg, run_dir)
