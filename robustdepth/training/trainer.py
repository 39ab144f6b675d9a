"""The trainer: one loop for every recipe.

It builds the dataset, networks, providers and loss terms from the config, then repeats
*batch → StepContext → LossSet → backward → optimiser step*. It never branches on a method: what
is trained is entirely the recipe's loss weights and providers.

Guarantees:

* ``--resume`` continues exactly (models, optimiser, scheduler, RNGs, data order): N steps straight
  equal N/2 + resume + N/2 on CPU, bit for bit.
* A non-finite loss or gradient never reaches the weights: the step is skipped and counted; after
  ``train.max_bad_steps`` in a row the run stops with a clear message and a checkpoint of the last
  good weights on disk.
* Under ``torchrun`` it trains data-parallel: rank-sharded data, gradients averaged across processes,
  rank-0 logging and saving.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from robustdepth.config import to_dict, to_yaml
from robustdepth.data import build_dataset
from robustdepth.data.base import FrameCache, FrameDataset
from robustdepth.losses import LossSet
from robustdepth.networks import DepthNet, PoseNet
from robustdepth.priors import ProviderSet
from robustdepth.training.checkpoint import (
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from robustdepth.training.context import StepContext, StepState, TrainModels
from robustdepth.training.distributed import (
    DistInfo,
    all_agree,
    average_gradients,
    barrier,
    broadcast_parameters,
    init_distributed,
    shutdown,
)
from robustdepth.training.logging import LogWindow, RunLogger
from robustdepth.training.sampler import EpochSampler


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps; the last good weights were saved."""


def build_models(cfg: Any, need_pose: bool) -> TrainModels:
    """Depth (and pose) networks, from ImageNet weights or an initial checkpoint when configured."""
    m = cfg.model
    depth = DepthNet(m.num_layers, scales=list(m.scales), pretrained_path=m.pretrained_path)
    pose = PoseNet(m.pose_num_layers, pretrained_path=m.pretrained_path) if need_pose else None
    models = TrainModels(depth, pose)
    if m.init_checkpoint:
        init_from_checkpoint(models, m.init_checkpoint)
    return models


def init_from_checkpoint(models: TrainModels, path: str) -> None:
    """Copy depth (and pose, when both have one) weights from a checkpoint — e.g. students from the teacher."""
    state = load_checkpoint(path)["models"]
    models.depth.load_state_dict(state["depth"])
    if models.pose is not None and "pose" in state:
        models.pose.load_state_dict(state["pose"])


def lr_factor(step: int, steps_per_epoch: int, decay_every_epochs: float, gamma: float) -> float:
    """StepLR expressed per step: γ^floor(epoch / step_size), identical to stepping StepLR each epoch."""
    epoch = step // steps_per_epoch
    return gamma ** math.floor(epoch / decay_every_epochs) if decay_every_epochs > 0 else 1.0


class Trainer:
    """Build everything from a config, then :meth:`fit`."""

    def __init__(self, cfg: Any, run_dir: str | Path | None = None, resume: str | Path | None = None) -> None:
        self.cfg = cfg
        self.dist, self.device = init_distributed(cfg.train.device)
        torch.manual_seed(cfg.train.seed)
        self.generator = torch.Generator().manual_seed(cfg.train.seed + 1)  # loss-side randomness
        self.run_dir = Path(run_dir or cfg.train.run_dir or Path("runs") / cfg.train.name)

        self.dataset = build_dataset(cfg, cfg.data.train_split, train=True)
        self.sampler = EpochSampler(len(self.dataset), cfg.optim.batch_size, cfg.train.seed,
                                    self.dist.rank, self.dist.world_size)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = cfg.optim.max_steps or cfg.optim.epochs * self.steps_per_epoch

        self.losses = LossSet(cfg)
        self.providers = ProviderSet(cfg)
        self.providers.check_required(self.losses.required_providers)
        self.models = build_models(cfg, self.losses.needs_pose).to(self.device)
        if cfg.train.channels_last:
            self.models.to(memory_format=torch.channels_last)
        self.providers.to(self.device)
        self.providers.setup(self.models)
        self.optimizer = torch.optim.Adam(self.models.parameters(), lr=cfg.optim.lr,
                                          weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, self.steps_per_epoch, cfg.optim.decay_every_epochs, cfg.optim.gamma))
        self.step = 0
        self.bad_in_a_row = 0
        self.skipped_steps = 0
        if resume is not None:
            self._resume(resume)
        self.depth_net, self.pose_net = self._wrap_networks()
        self.loader = self._make_loader()
        self.logger = RunLogger(self.run_dir, cfg, enabled=self.dist.is_main)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(cfg))

    # -- set-up --------------------------------------------------------------------------------
    def _wrap_networks(self) -> tuple[nn.Module, nn.Module | None]:
        """Optionally compiled networks. Data-parallel runs start from rank 0's weights; their gradients
        are averaged in :meth:`train_step` (see ``distributed.average_gradients`` for why not DDP hooks)."""
        broadcast_parameters(self.models, self.dist)
        depth, pose = self.models.depth, self.models.pose
        if self.cfg.train.compile:
            # The compiled wrappers share parameters with self.models: checkpoints, the optimiser and
            # resume keep using the plain modules' state_dicts (no "_orig_mod." keys).
            depth = torch.compile(depth)
            pose = torch.compile(pose) if pose is not None else None
        return depth, pose

    def _make_loader(self) -> DataLoader:
        """Batches that keep the model fed: worker processes (each with its own resized-frame cache, kept
        across epochs by persistent workers), pinned memory + non-blocking copies on CUDA, and prefetching."""
        workers = self.cfg.data.num_workers
        if isinstance(self.dataset, FrameDataset):
            self.dataset.frame_cache = FrameCache(max(0, int(self.cfg.data.cache_frames_mb)) * 2**20)
        return DataLoader(
            self.dataset, batch_size=self.cfg.optim.batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=True, persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(self.cfg.train.seed),  # keeps the global RNG untouched
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_payload(self) -> dict[str, Any]:
        models = {"depth": self.models.depth.state_dict()}
        if self.models.pose is not None:
            models["pose"] = self.models.pose.state_dict()
        return {
            "config": to_dict(self.cfg),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "total_steps": self.total_steps,
            "skipped_steps": self.skipped_steps,
            "models": models,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.generator),
            "providers": self.providers.training_state(),
        }

    def save(self, name: str | None = None) -> Path | None:
        """Write ``step_XXXXXXX.pt`` and ``last.pt`` (rank 0 only); prune old step files."""
        if not self.dist.is_main:
            return None
        folder = self.run_dir / "checkpoints"
        payload = self.checkpoint_payload()
        path = save_checkpoint(folder / (name or f"step_{self.step:07d}.pt"), payload)
        save_checkpoint(folder / "last.pt", payload)
        old = sorted(folder.glob("step_*.pt"))[: -self.cfg.train.keep_checkpoints or None]
        for stale in old if self.cfg.train.keep_checkpoints > 0 else []:
            stale.unlink()
        return path

    def _resume(self, source: str | Path) -> None:
        ckpt = load_checkpoint(source)
        self.models.depth.load_state_dict(ckpt["models"]["depth"])
        if self.models.pose is not None:
            self.models.pose.load_state_dict(ckpt["models"]["pose"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.providers.load_training_state(ckpt.get("providers", {}))
        restore_rng_state(ckpt["rng"], self.generator)
        self.step = int(ckpt["step"])
        self.skipped_steps = int(ckpt.get("skipped_steps", 0))

    # -- the loop ------------------------------------------------------------------------------
    def _batches(self) -> Iterator[dict[Any, Any]]:
        """Batches from the current step on, epoch after epoch (resume skips finished batches)."""
        while self.step < self.total_steps:
            epoch, done = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, skip_batches=done)
            for batch in self.loader:
                yield batch
                if self.step >= self.total_steps or self.step % self.steps_per_epoch == 0:
                    break

    def _to_device(self, batch: dict[Any, Any]) -> dict[Any, Any]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train_step(self, batch: dict[Any, Any]) -> dict[str, float]:
        """One optimisation step (or a counted skip when anything is non-finite)."""
        state = StepState(self.step, self.total_steps, self.step // self.steps_per_epoch, self.steps_per_epoch)
        degraded_active = self.step % self.cfg.degrade.every_n_steps == 0
        ctx = StepContext(self._to_device(batch), self.depth_net, self.pose_net, self.providers, state, self.cfg,
                          self.generator, self.device, degraded_active=degraded_active)
        self.models.train()
        # BatchNorm running statistics change in the forward pass itself: keep a copy (a few KB) so a
        # skipped step leaves the networks exactly as they were.
        buffers = [b.detach().clone() for b in self.models.buffers()]
        total, logs = self.losses(ctx)
        finite = bool(torch.isfinite(total))
        if finite:
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
            average_gradients(self.models, self.dist)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.models.parameters(), max_norm)
            finite = bool(torch.isfinite(grad_norm))
            logs["grad_norm"] = float(grad_norm)
        if all_agree(finite, self.device, self.dist):
            self.optimizer.step()
            self.bad_in_a_row = 0
            self.losses.after_step(ctx)
            self.providers.after_step(ctx)
        else:
            with torch.no_grad():
                for live, saved in zip(self.models.buffers(), buffers, strict=True):
                    live.copy_(saved)
            self._skip_bad_step(logs)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped step still advances the step-indexed schedule
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.scheduler.step()
        self.step += 1
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        logs["skipped_steps"] = float(self.skipped_steps)
        self.last_ctx = ctx
        return logs

    def _skip_bad_step(self, logs: dict[str, float]) -> None:
        self.bad_in_a_row += 1
        self.skipped_steps += 1
        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
        self.logger.warn(f"step {self.step}: non-finite {bad or 'gradient'}; step skipped, weights unchanged "
                         f"({self.bad_in_a_row} in a row)")
        if self.bad_in_a_row >= self.cfg.train.max_bad_steps:
            path = self.save(f"last_good_step_{self.step:07d}.pt")
            raise TrainingDiverged(
                f"{self.bad_in_a_row} consecutive steps with non-finite loss or gradients (last: {bad or 'gradient'}) "
                f"at step {self.step}; the last good weights are in {path}. Lower optim.lr, set optim.grad_clip, "
                f"or check the data; resume with --resume {path}")

    def fit(self, stop_at: int | None = None) -> Path | None:
        """Train to ``total_steps`` (or stop early at ``stop_at``, checkpointing — as an interruption would)."""
        end = min(self.total_steps, stop_at) if stop_at else self.total_steps
        progress = self.logger.progress(self.step, end)
        t0, images = time.perf_counter(), 0
        window = LogWindow()
        try:
            for batch in self._batches():
                logs = self.train_step(batch)
                window.add(logs)
                images += self.cfg.optim.batch_size * self.dist.world_size
                if self.step % self.cfg.train.log_every == 0 or self.step == end:
                    scalars = window.flush()
                    scalars["images_per_s"] = images / max(1e-9, time.perf_counter() - t0)
                    t0, images = time.perf_counter(), 0
                    self.logger.scalars(scalars, self.step)
                if self.step % self.cfg.train.image_every == 0 or self.step == 1:
                    self.logger.images(self.last_ctx, self.step)
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss/total']:.4f}", refresh=False)
                if self.step % self.cfg.train.ckpt_every == 0 or self.step >= end:
                    barrier(self.dist)
                    self.save()
                if self.step >= end:
                    break
        except KeyboardInterrupt:
            self.logger.warn(f"interrupted at step {self.step}: saving a checkpoint to resume from")
            self.save()
            raise
        finally:
            progress.close()
            self.logger.close()
        return self.run_dir / "checkpoints" / "last.pt" if self.dist.is_main else None

    def close(self) -> None:
        shutdown(self.dist)


def train(cfg: Any, run_dir: str | Path | None = None, resume: str | Path | None = None,
          stop_at: int | None = None) -> Path | None:
    """Build a :class:`Trainer` and fit; returns the last checkpoint's path (rank 0)."""
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume)
    try:
        return trainer.fit(stop_at=stop_at)
    finally:
        trainer.close()


__all__ = ["DistInfo", "Trainer", "TrainingDiverged", "build_models", "init_from_checkpoint", "train"]
