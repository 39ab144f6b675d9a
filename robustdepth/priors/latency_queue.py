"""SEC-Depth's latency queue: frozen past snapshots ("past selves") of the depth network.

The queue holds ``size`` (j) snapshots θ*_k of the trained depth network. It is empty until the
warm-up ends; then every member is set to the current weights. After that, member k is refreshed
with the EMA rule of SEC-Depth's Algorithm 1,

    θ*_k ← ω·θ*_k + (1 − ω)·θ          (ω = 0.01: a refresh is almost a fresh snapshot)

every ``refresh_every`` (T_u) steps, and also when the *spread trigger* fires (below). The member
refreshed is always the oldest one (smallest ``refreshed_at``, lowest index on ties), so refreshes
go round-robin.

**Spread trigger (the exact statistic).** On a step where SECL is computed, with the full-resolution
sigmoid disparities of the degraded samples — anchor ``a`` (current model, degraded frame), positive
``p`` (current model, clean frame) and negative ``n`` (the sampled member, degraded frame) — the
statistic is the pair of unbiased variances over all their pixels,

    spread_an = Var(a − n),    spread_ap = Var(a − p),

and the trigger fires when ``spread_an < trigger_ratio · spread_ap`` (``trigger_ratio`` = 1: the
negative explains the anchor better than the clean view does, i.e. it is no longer a useful
negative). Data-parallel ranks average the two variances before deciding, so every rank refreshes
the same member at the same step and the queues stay identical. See :func:`spread_statistic`.

**Storage.** A member is the depth network's state dict: floating-point *parameters* in
``storage_dtype`` (bf16 by default: the EMA is computed in fp32 and rounded once, a relative error
≤ 2⁻⁸ per weight; ``benchmarks/sec.py`` measures how far that moves a trained network's sigmoid
disparity (``bf16_storage_error``) — far below the anchor–negative differences SECL acts on), every
*buffer* (BatchNorm running statistics, ``num_batches_tracked``) kept in its own dtype (fp32), because
running variances are small positive numbers whose rounding would shift every normalised activation.
Members live on the compute device (``offload: false``) or on the CPU (``offload: true``); one fp32
*worker* network on the compute device is loaded with a member when it is used (and only when the
member it holds changed), so a j-member queue costs j bf16 copies + one fp32 network.

The worker and the stored tensors are not parameters of any module the optimiser or the gradient
all-reduce sees (those only see ``trainer.models``); the worker is frozen (``requires_grad=False``).

**Normalisation (``norm``).** The anchor comes from the trained network's training pass, whose BatchNorm layers
normalise with the statistics of the current batch. With ``norm: batch`` (default) the member does the same:
it runs on the anchor's whole batch with batch statistics (running statistics never updated), so a member with
the current weights reproduces the anchor and J_AN measures only how far the weights moved. ``norm: running``
is the notes' literal eval mode (stored running statistics). On the world that normalisation gap alone is
JS 0.11–0.61 for identical weights (``benchmarks/sec.py``, docs/results/sec.md), far above both margins
(α1 ≤ 0.09 after the warm-up, α2 = 0.005): the negative term then never fires, and SEC-Depth reduces to
JS(A, P). Under ``norm: running`` the S = 1 benchmark rows with and without the spread trigger ended with
bit-identical weights (measured 2026-11-22).

The queue's whole state is the module's ``state_dict`` (through ``get_extra_state``), so checkpoints carry it
and ``--resume`` restores it bit for bit.

**Output.** ``ctx.provide("latency_queue")`` returns ``None`` while the queue is still empty (warm-up),
else a :class:`QueueNegative`: the sampled member's sigmoid disparity at full resolution on the
degraded view (``disp``, no gradient) for the batch rows in ``rows`` (the samples that are degraded
this step when ``degraded_only``, else all), the member index, and ``observe(anchor, positive)`` to
feed the spread trigger. The member is drawn uniformly with ``ctx.generator``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustdepth.priors.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext, TrainModels

STORAGE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
STATE_VERSION = 1
NORMS = ("batch", "running")


@dataclass
class LatencyQueueConfig(ProviderConfig):
    enabled: bool = False
    size: int = 3  # j, number of past selves (UNSPECIFIED, suggested 3)
    refresh_every: int = 1000  # T_u, periodic refresh interval in optimiser steps (UNSPECIFIED, suggested 1000)
    omega: float = 0.01  # EMA weight on the stored member: θ* ← ω·θ* + (1 − ω)·θ (paper: 0.01)
    # Warm-up before the queue is filled with copies of the model (UNSPECIFIED, suggested one epoch):
    # warmup_steps >= 0 counts optimiser steps; < 0 uses warmup_epochs × steps per epoch.
    warmup_steps: int = -1
    warmup_epochs: float = 1.0
    forced_refresh: bool = True  # the spread trigger (Algorithm 1)
    trigger_ratio: float = 1.0  # fire when Var(a − n) < ratio · Var(a − p) (UNSPECIFIED statistic: see module doc)
    trigger_cooldown: int = 0  # min steps between two forced refreshes (0 = literal Algorithm 1)
    storage_dtype: str = "bf16"  # bf16 | fp16 | fp32 for stored parameters; buffers keep their dtype
    offload: bool = False  # keep members on the CPU and copy the used one to the device (large nets)
    degraded_only: bool = True  # the negative covers only the samples that are degraded this step
    # How members normalise (BatchNorm): "batch" = with the statistics of the anchor's own batch, as the trained
    # network does in its training pass (running statistics untouched), so a member holding the current weights
    # reproduces the anchor exactly (J_AN = 0); "running" = eval mode with the stored running statistics (the
    # literal "eval mode" of the notes). With "running" the normalisation gap alone puts J_AN at 0.11 (clear)
    # to 0.61 (night) for identical weights on the world, far above α1 and α2, so the negative term never fires
    # (measured by benchmarks/sec.py: docs/results/sec.md).
    norm: str = "batch"
    # The member used at a step: "random" (uniform with ctx.generator, the paper: one sampled per step).
    sample: str = "random"


@dataclass
class SpreadStat:
    """The spread trigger's statistic: Var(a − n) and Var(a − p) over the pixels of one step."""

    an: float
    ap: float


def spread_statistic(anchor: Tensor, positive: Tensor, negative: Tensor) -> SpreadStat:
    """Unbiased variance of anchor − negative and of anchor − positive over every element (detached)."""
    if not anchor.shape == positive.shape == negative.shape:
        raise ValueError(f"spread_statistic needs equal shapes, got anchor {tuple(anchor.shape)}, "
                         f"positive {tuple(positive.shape)}, negative {tuple(negative.shape)}")
    a = anchor.detach().float()
    return SpreadStat(an=float((a - negative.detach().float()).var()),
                      ap=float((a - positive.detach().float()).var()))


def batch_statistics_(net: nn.Module) -> nn.Module:
    """In place: BatchNorm layers normalise with the current batch's statistics and never update their running
    ones (train mode, momentum 0: running ← 1·running + 0·batch); every other layer stays as it is."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
            module.momentum = 0.0
    return net


def ema_(stored: dict[str, Tensor], current: dict[str, Tensor], omega: float, float_params: set[str]) -> None:
    """In place: stored ← ω·stored + (1 − ω)·current for floating tensors (computed in fp32, rounded once
    to the stored dtype); integer buffers (BatchNorm's ``num_batches_tracked``) are copied."""
    for name, target in stored.items():
        source = current[name].detach()
        if name in float_params or target.is_floating_point():
            mixed = omega * target.float() + (1.0 - omega) * source.float().to(target.device)
            target.copy_(mixed)
        else:
            target.copy_(source)


@dataclass
class QueueNegative:
    """One step's negative: ``disp`` (R×1×H×W sigmoid disparity of member ``member`` on the degraded view,
    no gradient) for the batch rows selected by ``rows`` (bool, length B)."""

    disp: Tensor
    rows: Tensor
    member: int
    queue: LatencyQueue = field(repr=False)

    def observe(self, anchor: Tensor, positive: Tensor) -> SpreadStat:
        """Record the spread statistic of this step (anchor/positive for the same ``rows``) for the trigger."""
        stat = spread_statistic(anchor, positive, self.disp)
        self.queue.last_spread = stat
        return stat


@register_provider
class LatencyQueue(Provider):
    """Frozen past snapshots of the depth network for SEC-Depth (see the module docstring)."""

    name = "latency_queue"
    Config = LatencyQueueConfig
    stateful = True

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        if cfg.size < 1:
            raise ValueError(f"providers.latency_queue.size={cfg.size}: need at least one member")
        if cfg.refresh_every < 1:
            raise ValueError(f"providers.latency_queue.refresh_every={cfg.refresh_every}: must be >= 1")
        if not 0.0 <= cfg.omega < 1.0:
            raise ValueError(f"providers.latency_queue.omega={cfg.omega}: must lie in [0, 1)")
        if cfg.storage_dtype not in STORAGE_DTYPES:
            raise ValueError(f"providers.latency_queue.storage_dtype={cfg.storage_dtype!r}: "
                             f"use one of {sorted(STORAGE_DTYPES)}")
        if cfg.norm not in NORMS:
            raise ValueError(f"providers.latency_queue.norm={cfg.norm!r}: use one of {NORMS}")
        if cfg.sample != "random":
            raise ValueError(f"providers.latency_queue.sample={cfg.sample!r}: only 'random' is implemented")
        self.members: list[dict[str, Tensor]] = []
        self.refreshed_at: list[int] = []  # step after which each member was last written
        self.versions: list[int] = []  # bumps on every write (the worker reloads only on change)
        self.init_step = -1
        self.last_periodic = -1
        self.last_forced = -(10**9)
        self.counts = {"periodic": 0, "forced": 0}
        self.last_spread: SpreadStat | None = None
        self._source: list[nn.Module] = []  # the trained depth net (a list: not a submodule)
        self._worker: list[nn.Module] = []  # frozen fp32 network that runs members (not a submodule)
        self._worker_holds: tuple[int, int] | None = None
        self._float_params: set[str] = set()
        self._device = torch.device("cpu")

    # -- set-up --------------------------------------------------------------------------------------
    def setup(self, models: TrainModels) -> None:
        """Keep a reference to the trained depth net and build the frozen worker next to it."""
        depth = models.depth
        self._source = [depth]
        self._device = next(depth.parameters()).device
        self._float_params = {n for n, p in depth.named_parameters() if p.is_floating_point()}
        worker = copy.deepcopy(depth).eval().requires_grad_(False)
        if self.cfg.norm == "batch":
            batch_statistics_(worker)
        self._worker = [worker]
        self._worker_holds = None

    @property
    def worker(self) -> nn.Module:
        if not self._worker:
            raise RuntimeError("latency_queue used before setup(models): the trainer calls setup first")
        return self._worker[0]

    @property
    def ready(self) -> bool:
        return len(self.members) == self.cfg.size

    def warmup_steps(self, steps_per_epoch: int) -> int:
        if self.cfg.warmup_steps >= 0:
            return int(self.cfg.warmup_steps)
        return round(self.cfg.warmup_epochs * steps_per_epoch)

    # -- storage -------------------------------------------------------------------------------------
    def _storage_device(self) -> torch.device:
        return torch.device("cpu") if self.cfg.offload else self._device

    def _snapshot(self) -> dict[str, Tensor]:
        """The current weights in the storage format (params in storage_dtype, buffers as they are)."""
        dtype = STORAGE_DTYPES[self.cfg.storage_dtype]
        out = {}
        for name, value in self._source[0].state_dict().items():
            value = value.detach().to(self._storage_device())
            out[name] = value.to(dtype).clone() if name in self._float_params else value.clone()
        return out

    def _initialise(self, step: int) -> None:
        self.members = [self._snapshot() for _ in range(self.cfg.size)]
        self.refreshed_at = [step] * self.cfg.size
        self.versions = [0] * self.cfg.size
        self.init_step = self.last_periodic = step

    def oldest(self) -> int:
        """Index of the member refreshed longest ago (lowest index on ties): round-robin replacement."""
        return min(range(len(self.members)), key=lambda k: (self.refreshed_at[k], k))

    def refresh(self, step: int, member: int | None = None) -> int:
        """Apply θ*_k ← ω·θ*_k + (1 − ω)·θ to ``member`` (default: the oldest); returns its index."""
        k = self.oldest() if member is None else member
        with torch.no_grad():
            ema_(self.members[k], self._source[0].state_dict(), float(self.cfg.omega), self._float_params)
        self.refreshed_at[k] = step
        self.versions[k] += 1
        return k

    # -- per step ------------------------------------------------------------------------------------
    def _load_worker(self, k: int) -> nn.Module:
        """Load member k into the fp32 worker unless it already holds that version."""
        worker = self.worker
        if self._worker_holds != (k, self.versions[k]):
            worker.load_state_dict(self.members[k])  # copy_ casts bf16 → fp32 and moves to the device
            self._worker_holds = (k, self.versions[k])
        return worker

    def sample_member(self, generator: torch.Generator) -> int:
        return int(torch.randint(len(self.members), (1,), generator=generator))

    def forward(self, ctx: StepContext) -> QueueNegative | None:
        """The sampled member's full-resolution sigmoid disparity on the degraded view (None before warm-up)."""
        if not self.ready:
            return None
        k = self.sample_member(ctx.generator)
        image = ctx.image("degraded")
        rows = torch.ones(image.shape[0], dtype=torch.bool, device=image.device)
        if self.cfg.degraded_only and "is_degraded" in ctx.batch:
            rows = ctx.batch["is_degraded"].to(image.device).bool()
        if not bool(rows.any()):
            return None
        if self.cfg.norm == "batch":  # the anchor's whole batch, so that BatchNorm sees the same statistics
            disp = ctx.run_depth(self._load_worker(k), image, grad=False).disp[0][rows]
        else:
            disp = ctx.run_depth(self._load_worker(k), image[rows], grad=False).disp[0]
        return QueueNegative(disp=disp.detach(), rows=rows, member=k, queue=self)

    def _spread_fires(self, ctx: StepContext) -> bool:
        """Trigger decision, identical on every data-parallel rank (variances averaged over ranks)."""
        stat, self.last_spread = self.last_spread, None
        values = torch.tensor([stat.an, stat.ap, 1.0] if stat else [0.0, 0.0, 0.0], dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            values = values.to(self._device)
            dist.all_reduce(values)
            values = values.cpu()
        an, ap, n = values.tolist()
        return n > 0 and an < float(self.cfg.trigger_ratio) * ap

    def after_step(self, ctx: StepContext) -> None:
        """Fill the queue at the end of the warm-up; refresh periodically and on the spread trigger."""
        step = ctx.state.step + 1  # optimiser steps done, counting this one
        if not self.ready:
            self.last_spread = None
            if step >= self.warmup_steps(ctx.state.steps_per_epoch):
                self._initialise(step)
            return
        forced = self._spread_fires(ctx) and self.cfg.forced_refresh \
            and step - self.last_forced >= self.cfg.trigger_cooldown
        if step - self.last_periodic >= self.cfg.refresh_every:
            self.refresh(step)
            self.last_periodic = step
            self.counts["periodic"] += 1
        if forced:
            self.refresh(step)
            self.last_forced = step
            self.counts["forced"] += 1

    # -- checkpoints ---------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The queue's whole training state (plain values and tensors: loads with weights_only=True)."""
        return {
            "version": STATE_VERSION, "members": self.members, "refreshed_at": list(self.refreshed_at),
            "versions": list(self.versions), "init_step": self.init_step, "last_periodic": self.last_periodic,
            "last_forced": self.last_forced, "counts": dict(self.counts),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"latency_queue state version {state.get('version')!r} is not {STATE_VERSION}")
        members = state["members"]
        if members and len(members) != self.cfg.size:
            raise ValueError(f"checkpoint latency queue has {len(members)} members, "
                             f"providers.latency_queue.size is {self.cfg.size}")
        device = self._storage_device()
        self.members = [{k: v.to(device) for k, v in m.items()} for m in members]
        self.refreshed_at = [int(x) for x in state["refreshed_at"]]
        self.versions = [int(x) for x in state["versions"]]
        self.init_step, self.last_periodic = int(state["init_step"]), int(state["last_periodic"])
        self.last_forced = int(state["last_forced"])
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self._worker_holds = None

    def stored_bytes(self) -> int:
        """Bytes held by the stored members (the compact copies, not the worker)."""
        return sum(t.numel() * t.element_size() for m in self.members for t in m.values())
