"""The trainer: one loop for every recipe.

It builds the dataset, networks, providers and loss terms from the config, then repeats
*batch → StepContext → LossSet → backward → optimiser step*. It never branches on a method: what
is trained is entirely the recipe's loss weights and providers.

Guarantees:

* ``--resume`` continues exactly (models, optimiser, scheduler, RNGs, data order): N steps straight
  equal N/2 + resume + N/2 on CPU, bit for bit.
* A non-finite loss or gradient never reaches the weights: the step is skipped and counted; after
  ``train.max_bad_steps`` in a row the run stops with a clear message and a checkpoint of the last
  *sane* weights on disk: the state at the run's start or at its latest checkpoint whose weights were
  finite and not blown up (:data:`SANE_WEIGHT_GROWTH`) with no skipped step before it — the weights just
  before the first non-finite step are usually already wrecked. The message gives the command that
  resumes from them at a lower learning rate (``--resume`` applies ``optim.*`` overrides).
* A run directory belongs to one run (``training.rundir``): an existing run is refused unless resumed or
  overwritten, a lock is held for the trainer's life, and pruning deletes only step files of this run.
* A data error raised while loading a batch (in a loader worker or not) stops the run with the
  underlying error, after saving a checkpoint to resume from.
* Under ``torchrun`` it trains data-parallel: rank-sharded data, gradients averaged across processes,
  rank-0 logging and saving.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from robustdepth.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    max_abs_weight,
    resolve_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    step_files,
)
from robustdepth.config import ConfigError, to_dict, to_yaml
from robustdepth.data import build_dataset
from robustdepth.data.base import DataError, FrameCache, FrameDataset, unwrap_worker_error
from robustdepth.losses import LossSet
from robustdepth.networks import PoseNet, build_depth_net
from robustdepth.providers import ProviderSet
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
from robustdepth.training.rundir import RunLock, check_run_dir, claim_run_dir
from robustdepth.training.sampler import EpochSampler

#: A checkpoint's weights count as sane for the divergence fallback while their largest |value| stays
#: within this factor of the run's starting weights' (at least 1): a learning rate far too high first
#: inflates weights by orders of magnitude, while the loss stays finite, before anything turns NaN.
SANE_WEIGHT_GROWTH = 1000.0


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps; the last good weights were saved."""


def build_models(cfg: Any, need_pose: bool) -> TrainModels:
    """Depth (and pose) networks, from ImageNet weights or an initial checkpoint when configured."""
    m = cfg.model
    depth = build_depth_net(m, pretrained=True)
    pose = PoseNet(m.pose_num_layers, pretrained_path=m.pretrained_path) if need_pose else None
    models = TrainModels(depth, pose)
    if m.init_checkpoint:
        init_from_checkpoint(models, m.init_checkpoint)
    return models


def init_from_checkpoint(models: TrainModels, path: str) -> None:
    """Copy depth (and pose, when both have one) weights from a checkpoint — e.g. students from the teacher."""
    state = load_checkpoint(path)["models"]
    load_weights(models.depth, state["depth"], path, "depth")
    if models.pose is not None and "pose" in state:
        load_weights(models.pose, state["pose"], path, "pose")


def build_optimizer(models: nn.Module, optim: Any) -> torch.optim.Adam:
    """Adam over every trainable weight of ``models`` with ``optim.lr`` / ``optim.weight_decay``; torch's fused
    kernel when ``optim.fused`` (the default path otherwise: torch picks foreach or the per-tensor loop)."""
    return torch.optim.Adam(models.parameters(), lr=optim.lr, weight_decay=optim.weight_decay,
                            fused=True if optim.fused else None)


def gradient_norm(models: nn.Module, grad_clip: float) -> torch.Tensor:
    """The total L2 norm of every gradient (logged, and its finiteness gates the step); with ``grad_clip`` > 0
    the gradients are also scaled to at most that norm. Without clipping only the norm is computed: torch's
    ``clip_grad_norm_`` with an infinite bound still multiplies every gradient by 1.0, a full extra pass over
    the ~28 M gradients of depth + pose that changes no value."""
    if grad_clip > 0:
        return torch.nn.utils.clip_grad_norm_(models.parameters(), grad_clip)
    return torch.nn.utils.get_total_norm([p.grad for p in models.parameters() if p.grad is not None])


def lr_factor(step: int, steps_per_epoch: int, decay_every_epochs: float, gamma: float) -> float:
    """StepLR expressed per step: γ^floor(epoch / step_size), identical to stepping StepLR each epoch."""
    epoch = step // steps_per_epoch
    return gamma ** math.floor(epoch / decay_every_epochs) if decay_every_epochs > 0 else 1.0


class Trainer:
    """Build everything from a config, then :meth:`fit`."""

    def __init__(self, cfg: Any, run_dir: str | Path | None = None, resume: str | Path | None = None,
                 overwrite: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.train.run_dir or Path("runs") / cfg.train.name)
        self.resume_from = resolve_checkpoint(resume) if resume is not None else None
        self.overwrite = overwrite
        self.run_lock: RunLock | None = None
        if int(os.environ.get("RANK", "0")) == 0:
            check_run_dir(self.run_dir, self.resume_from, overwrite)  # fail before any work; re-checked locked
        resumed = load_checkpoint(self.resume_from) if self.resume_from is not None else None
        if resumed is not None:
            self._check_resumable(resumed)
        self.dist, self.device = init_distributed(cfg.train.device)
        torch.manual_seed(cfg.train.seed)
        self.generator = torch.Generator().manual_seed(cfg.train.seed + 1)  # loss-side randomness

        self.dataset = build_dataset(cfg, cfg.data.train_split, train=True)
        try:
            self.sampler = EpochSampler(len(self.dataset), cfg.optim.batch_size, cfg.train.seed,
                                        self.dist.rank, self.dist.world_size)
        except ValueError as err:  # too few samples for one batch: a data/config mismatch, one line
            raise ConfigError(f"data.root={cfg.data.root}: {err}") from None
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = cfg.optim.max_steps or cfg.optim.epochs * self.steps_per_epoch

        try:
            self.losses = LossSet(cfg)
            self.providers = ProviderSet(cfg)
        except ValueError as err:  # a component Config that does not validate is a config error
            if isinstance(err, (ConfigError, DataError, CheckpointError)):
                raise
            raise ConfigError(" ".join(str(err).split())) from err
        self.providers.check_required(self.losses.required_providers)
        self.models = build_models(cfg, self.losses.needs_pose).to(self.device)
        if cfg.train.channels_last:
            self.models.to(memory_format=torch.channels_last)
        self.providers.to(self.device)
        self.providers.setup(self.models)
        self.optimizer = build_optimizer(self.models, cfg.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, self.steps_per_epoch, cfg.optim.decay_every_epochs, cfg.optim.gamma))
        self.step = 0
        self.bad_in_a_row = 0
        self.skipped_steps = 0
        self.own_step_files: list[Path] = []  # what pruning may delete: step files of this run only
        if resumed is not None:
            self._resume(resumed, self.resume_from)
            del resumed
        self.depth_net, self.pose_net = self._wrap_networks()
        self.loader = self._make_loader()
        if self.dist.is_main:
            self.run_lock = claim_run_dir(self.run_dir, self.resume_from, overwrite)
            if self.resume_from is not None:
                self.own_step_files = [p for p in step_files(self.run_dir / "checkpoints")
                                       if _step_of(p) <= self.step]
        self.logger = RunLogger(self.run_dir, cfg, enabled=self.dist.is_main)
        from robustdepth.training.validation import make_validator  # train.val_every / train.keep_best

        self.validator = make_validator(cfg, self.run_dir) if self.dist.is_main else None
        if self.dist.is_main:
            (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        self.weight_bound = SANE_WEIGHT_GROWTH * max(1.0, self._max_abs_weight())
        self.good_state = self._snapshot()
        self.skips_at_last_check = self.skipped_steps
        self.fit_start = self.step

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
        if name is None and path not in self.own_step_files:
            self.own_step_files.append(path)
        self._prune()
        self._refresh_good_state()
        return path

    def _prune(self) -> None:
        """Keep the newest ``train.keep_checkpoints`` step files *of this run* (0 = keep all)."""
        keep = self.cfg.train.keep_checkpoints
        if keep <= 0:
            return
        self.own_step_files.sort(key=_step_of)
        while len(self.own_step_files) > keep:
            self.own_step_files.pop(0).unlink(missing_ok=True)

    # -- divergence fallback ---------------------------------------------------------------------
    def _max_abs_weight(self) -> float:
        """Largest |parameter| of the trained networks (BatchNorm statistics excluded: they track the data's
        variance and may grow legitimately)."""
        return max_abs_weight(dict(self.models.named_parameters()))

    def _snapshot(self) -> dict[str, Any] | None:
        """A CPU copy of the checkpoint payload (what the divergence fallback writes), rank 0 only."""
        if not self.dist.is_main:
            return None
        return _cpu_copy(self.checkpoint_payload())

    def _refresh_good_state(self) -> None:
        """At a checkpoint: remember this state as the last sane one when no step was skipped since the
        previous checkpoint and the weights are finite and within :data:`SANE_WEIGHT_GROWTH`."""
        clean_interval = self.skipped_steps == self.skips_at_last_check
        self.skips_at_last_check = self.skipped_steps
        if self.good_state is not None and clean_interval and self._max_abs_weight() <= self.weight_bound:
            self.good_state = self._snapshot()

    def _check_resumable(self, ckpt: dict[str, Any]) -> None:
        """Refuse resume overrides that cannot apply to a run in progress (the batch size fixes the data order
        and epoch length of the steps already taken)."""
        stored_batch = ckpt["config"].get("optim", {}).get("batch_size")
        if stored_batch is not None and int(stored_batch) != int(self.cfg.optim.batch_size):
            raise ConfigError(
                f"optim.batch_size={self.cfg.optim.batch_size} on resume: {self.resume_from} was trained with batch "
                f"size {stored_batch}, which fixes its data order and epoch length; resume without it, or start a "
                f"new run from these weights (model.init_checkpoint={self.resume_from} --run-dir NEW)")
        for key in ("optimizer", "scheduler", "rng"):
            if key not in ckpt:
                raise CheckpointError(f"checkpoint {self.resume_from} has no {key} state: it can initialise a run "
                                      f"(model.init_checkpoint=...) but not be resumed")

    def _resume(self, ckpt: dict[str, Any], source: Path) -> None:
        load_weights(self.models.depth, ckpt["models"]["depth"], source, "depth")
        if self.models.pose is not None:
            if "pose" not in ckpt["models"]:
                raise CheckpointError(f"checkpoint {source} has no pose weights, but this recipe trains a pose network")
            load_weights(self.models.pose, ckpt["models"]["pose"], source, "pose")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {source}: its optimiser state does not fit this recipe's "
                                  f"parameters ({' '.join(str(err).split())[:200]})") from None
        self.providers.load_training_state(ckpt.get("providers", {}))
        restore_rng_state(ckpt["rng"], self.generator)
        self.step = int(ckpt["step"])
        self.skipped_steps = int(ckpt.get("skipped_steps", 0))
        self._apply_optim_config()

    def _apply_optim_config(self) -> None:
        """Make the restored optimiser and schedule follow ``cfg.optim`` (resume overrides of optim.lr,
        weight_decay, decay_every_epochs, gamma take effect; without overrides nothing changes, bit for bit).

        LambdaLR keeps ``base_lrs`` in its state and computes ``lr = base_lr · factor(step)``; the factor
        already reads the live config, so setting the base and recomputing the current lr is enough.
        """
        optim = self.cfg.optim
        self.scheduler.base_lrs = [float(optim.lr) for _ in self.optimizer.param_groups]
        factors = [fn(self.scheduler.last_epoch) for fn in self.scheduler.lr_lambdas]
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, factors, strict=True):
            group["initial_lr"] = base
            group["lr"] = base * factor
            group["weight_decay"] = float(optim.weight_decay)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # -- the loop ------------------------------------------------------------------------------
    def _batches(self) -> Iterator[dict[str, Any]]:
        """Batches from the current step on, epoch after epoch (resume skips finished batches)."""
        while self.step < self.total_steps:
            epoch, done = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, skip_batches=done)
            batches = iter(self.loader)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception as err:  # a worker's error arrives wrapped, with its traceback as text
                    raise _BatchLoadError(unwrap_worker_error(err)) from None
                yield batch
                if self.step >= self.total_steps or self.step % self.steps_per_epoch == 0:
                    break

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimisation step (or a counted skip when anything is non-finite)."""
        state = StepState(self.step, self.total_steps, self.step // self.steps_per_epoch, self.steps_per_epoch)
        degraded_active = self.step % self.cfg.degrade.every_n_steps == 0
        ctx = StepContext(self._to_device(batch), self.depth_net, self.pose_net, self.providers, state, self.cfg,
                          self.generator, self.device, degraded_active=degraded_active)
        self.models.train()
        # BatchNorm running statistics change in the forward pass itself: keep a copy (a few KB) so a
        # skipped step leaves the networks exactly as they were.
        buffers = [b.detach().clone() for b in self.models.buffers()]
        with ctx.weight_casts():
            total, logs = self.losses(ctx)
        finite = bool(torch.isfinite(total))
        if finite:
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            average_gradients(self.models, self.dist)
            grad_norm = gradient_norm(self.models, self.cfg.optim.grad_clip)
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
            path = self._save_good_state()
            lower = f"{self.cfg.optim.lr / 10:g}"
            raise TrainingDiverged(
                f"{self.bad_in_a_row} consecutive steps with non-finite loss or gradients (last: {bad or 'gradient'}) "
                f"at step {self.step}; the last good weights are in {path}. They are from step {self._good_step()}, "
                f"before the blow-up; resume from them at a lower learning rate: robustdepth train --resume {path} "
                f"optim.lr={lower} (or also set optim.grad_clip, or check the data)")

    def _good_step(self) -> int:
        return int(self.good_state["step"]) if self.good_state is not None else self.step

    def _save_good_state(self) -> Path | None:
        """Write the last sane state (see :meth:`_refresh_good_state`) as ``last_good_step_XXXXXXX.pt``."""
        barrier(self.dist)
        if not self.dist.is_main or self.good_state is None:
            return None
        name = f"last_good_step_{self._good_step():07d}.pt"
        return save_checkpoint(self.run_dir / "checkpoints" / name, self.good_state)

    def fit(self, stop_at: int | None = None) -> Path | None:
        """Train to ``total_steps`` (or stop early at ``stop_at``, checkpointing — as an interruption would)."""
        end = min(self.total_steps, stop_at) if stop_at else self.total_steps
        self.fit_start = self.step
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
                if self.validator is not None:
                    self.validator.after_step(self.step, self.models.depth, self.device, self.logger.scalars,
                                              self.checkpoint_payload)
                if self.step >= end:
                    break
        except KeyboardInterrupt:
            self.logger.warn(f"interrupted at step {self.step}: saving a checkpoint to resume from")
            self.save()
            raise
        except _BatchLoadError as failure:
            raise self._data_failure(failure.error) from None
        finally:
            progress.close()
            self.logger.close()
        last = self.run_dir / "checkpoints" / "last.pt"
        return last if self.dist.is_main and last.is_file() else None

    def _data_failure(self, error: BaseException) -> BaseException:
        """Save a checkpoint when this fit made progress (batches load between steps, so the state is whole)
        and return the data error with where to resume from appended; other errors come back unchanged."""
        if not isinstance(error, DataError):
            return error
        path = self.save() if self.step > self.fit_start else None
        where = f"; progress saved at step {self.step} in {path} (fix the data, then --resume {self.run_dir})" \
            if path is not None else ""
        return DataError(f"{error}{where}")

    def close(self) -> None:
        """Release what the run holds: the loader's persistent worker processes (each keeps a copy of the
        dataset and its frame cache: a process that trains several runs in a row — the benchmarks, the demo —
        would otherwise keep every run's workers alive), the run folder's lock, the process group."""
        shutdown_workers(self.loader)
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None
        shutdown(self.dist)


def shutdown_workers(loader: DataLoader) -> None:
    """Stop ``loader``'s persistent worker processes now (torch keeps them until its iterator is collected)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


class _BatchLoadError(Exception):
    """Carries an error raised while loading a batch out of the loop (see :meth:`Trainer._data_failure`)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _cpu_copy(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU (dicts, lists and tuples rebuilt, other values shared)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _step_of(path: Path) -> int:
    """The step number of ``step_XXXXXXX.pt`` (-1 for other names)."""
    digits = path.stem.rpartition("_")[2]
    return int(digits) if digits.isdigit() else -1


def train(cfg: Any, run_dir: str | Path | None = None, resume: str | Path | None = None,
          stop_at: int | None = None, overwrite: bool = False) -> Path | None:
    """Build a :class:`Trainer` and fit; returns the last checkpoint's path (rank 0; None when none was
    written, e.g. a resumed run that was already finished and whose folder lacks ``last.pt``)."""
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite)
    try:
        return trainer.fit(stop_at=stop_at)
    finally:
        trainer.close()


__all__ = ["DistInfo", "Trainer", "TrainingDiverged", "build_models", "init_from_checkpoint", "train"]
