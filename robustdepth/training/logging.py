"""Run logging: progress bar, TensorBoard scalars and image grids, warnings (rank 0 only)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from robustdepth.visualize import colorize_disparity

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext


class _NullBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


class LogWindow:
    """The scalars of the steps between two TensorBoard writes.

    Terms that run only on some steps (SECL and every degraded-only term run every S steps) would never
    reach TensorBoard if only the logging step's values were written: with S = 5 and ``log_every`` = 25 the
    logging step is never a degraded one. So every key seen in the window is written: ``loss/*`` keys as their
    mean over the steps that reported them (less noisy, and comparable between terms), every other key
    (learning rate, counters, diagnostics) as its latest value.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, float] = {}

    def add(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.latest[key] = value
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def flush(self) -> dict[str, float]:
        """The window's values (see the class doc), then an empty window."""
        out = {k: self.sums[k] / self.counts[k] if k.startswith("loss/") else v for k, v in self.latest.items()}
        for store in (self.sums, self.counts, self.latest):
            store.clear()
        return out


class RunLogger:
    """TensorBoard + tqdm for the main process; silent elsewhere."""

    def __init__(self, run_dir: Path, cfg: Any, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cfg = cfg
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def progress(self, start: int, total: int) -> Any:
        if not (self.enabled and self.cfg.train.progress):
            return _NullBar()
        return tqdm(total=total, initial=start, desc=f"train {self.cfg.train.name}", unit="step",
                    dynamic_ncols=True, file=sys.stderr)

    def scalars(self, logs: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for key, value in logs.items():
            self.writer.add_scalar(key, value, step)

    def images(self, ctx: StepContext, step: int) -> None:
        """First sample: network input, clean target and colour-mapped disparity, side by side."""
        if self.writer is None:
            return
        with torch.no_grad():
            inp = ctx.image("input")[0].float().clamp(0, 1).cpu()
            clean = ctx.color(0)[0].float().clamp(0, 1).cpu()
            disp = ctx.depth("input", grad=False).disp[0][0, 0].float().cpu().numpy()
        disp_rgb = torch.from_numpy(colorize_disparity(disp).astype(np.float32) / 255.0).permute(2, 0, 1)
        self.writer.add_image("input | clean target | disparity", torch.cat([inp, clean, disp_rgb], dim=2), step)

    def warn(self, message: str) -> None:
        if self.enabled:
            tqdm.write(f"warning: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
