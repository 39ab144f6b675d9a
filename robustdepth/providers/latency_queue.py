"""SEC-Depth's latency queue: frozen snapshots of the depth network taken at earlier training stages.

Contract (the method and every choice made here: docs/methods.md § SEC-Depth; measurements: docs/results/sec.md):

* **Members.** ``size`` (j) snapshots θ*_k of the trained depth network. The queue is empty until the warm-up
  ends; then every member is set to the current weights (``refreshed_at`` = that step).
* **Refresh rule** (SEC-Depth's Algorithm 1): θ*_k ← ω·θ*_k + (1 − ω)·θ, ω = 0.01, so a refresh is almost a
  fresh snapshot. The *age* of member k at a step is the number of optimiser steps since it was last written.
* **Periodic refresh** every ``refresh_every`` (T_u) steps, of the oldest member (round-robin). Once the queue
  has turned over, the members are spaced T_u apart and their ages span [0, j·T_u): they are past *stages*.
  ``frozen: true`` never refreshes (the frozen-queue control).
* **Forced refresh** (``forced_refresh``), statistic ``trigger``:

  - ``margin`` (default): on a SECL step the member that was sampled fires when J_AN, the same JS divergence
    the loss computes between anchor and negative, lies below ``trigger_margin`` (α2 by default: inside the
    smallest margin of SECL, where the negative is indistinguishable from the anchor), provided that member is
    at least ``trigger_min_age`` steps old (T_u by default: a fresh snapshot is close to the anchor by
    construction and must not fire). The member that fired is refreshed. JS compares distributions over
    absolute disparity bins, so a global offset or a change of scale between anchor and negative counts.
  - ``variance``: the literal rule of the implementation notes — fire when Var(a − n) < ``trigger_ratio`` ·
    Var(a − p) over the degraded samples' pixels, and refresh the *oldest* member. It ignores offsets and,
    since a just-refreshed member differs from the anchor by a few steps of drift while a − p is the weather
    gap, it fires on almost every SECL step: the queue then holds only the last few steps. Kept as an option
    so that the literal reading can be reproduced.

  ``trigger_cooldown`` is the minimum number of steps between two forced refreshes (0 = none). The statistic
  of a step is used only by that step's ``after_step``: a step that was skipped (non-finite) leaves nothing
  behind for the next one. Data-parallel ranks average the statistic before deciding, so every rank refreshes
  the same member at the same step and the queues stay identical.
* **Storage.** A member is the depth network's state dict: floating-point *parameters* in ``storage_dtype``
  (bf16 by default: the EMA is computed in fp32 and rounded once, a relative error ≤ 2⁻⁸ per weight, small next
  to the anchor–negative differences SECL acts on; ``benchmarks/sec.py`` measures it), every *buffer* (BatchNorm
  statistics, ``num_batches_tracked``) in its own dtype, because rounding a running variance would shift every
  normalised activation. Members live on the compute device or, with ``offload``, on the CPU; one frozen
  *worker* network (fp32; under bf16 training its conv weights in bf16, the values autocast would cast them to) is
  loaded with the member in use (only when that member changed). Neither the worker nor the
  stored tensors are parameters of any module the optimiser or the gradient all-reduce sees.
* **Normalisation** (``norm``). ``batch`` (default): the worker's BatchNorm layers use the statistics of the
  anchor's own batch, as the trained network does in its training pass (running statistics never updated), so
  a member that holds the current weights reproduces the anchor exactly and J_AN measures only how far the
  weights moved. ``running`` is the literal "eval mode"; its normalisation gap alone puts J_AN far above both
  margins (docs/methods.md § SEC-Depth), so SECL's negative term would never act.
* **Record.** The queue's state (members, ages, counts by reason, the age of every negative used and a log of
  every refresh) is its ``state_dict`` (``get_extra_state``): checkpoints carry it, ``--resume`` restores it bit
  for bit, and the SEC table reads the age distribution and refresh rate from a run's last checkpoint.

**Output.** ``ctx.provide("latency_queue")`` is ``None`` while the queue is empty (warm-up), else a
:class:`QueueNegative` for the member of this step, drawn uniformly from a generator seeded by the step (the same
on every data-parallel rank, whatever its batch holds): ``disp(view)`` is that member's full-resolution sigmoid
disparity on a view of the whole batch (no gradient; the loss selects its rows), and ``observe(...)`` hands this
step's statistic to the trigger.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustdepth.config import ConfigError
from robustdepth.providers.base import Provider, ProviderConfig, in_step_numerics, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext, TrainModels

STORAGE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
STATE_VERSION = 2
NORMS = ("batch", "running")
TRIGGERS = ("margin", "variance")
REASONS = ("periodic", "forced")


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
    frozen: bool = False  # True: filled once after the warm-up, never refreshed (the frozen-queue control)
    forced_refresh: bool = True  # refresh when the trigger fires (Algorithm 1)
    # Trigger statistic (UNSPECIFIED in the paper): margin = J_AN < trigger_margin on a member at least
    # trigger_min_age old, refreshing that member | variance = the notes' literal Var(a−n) < ratio·Var(a−p),
    # refreshing the oldest (fires on nearly every SECL step: the queue then holds only the last steps).
    trigger: str = "margin"
    trigger_margin: float = 0.005  # margin trigger: fire when J_AN < this (SECL's α2)
    trigger_min_age: int = -1  # margin trigger: a member younger than this cannot fire; -1 = T_u
    trigger_ratio: float = 1.0  # variance trigger: fire when Var(a − n) < ratio · Var(a − p)
    trigger_cooldown: int = 0  # min steps between two forced refreshes (0 = none)
    storage_dtype: str = "bf16"  # bf16 | fp16 | fp32 for stored parameters; buffers keep their dtype
    offload: bool = False  # keep members on the CPU and copy the used one to the device (large nets)
    # How members normalise (BatchNorm): batch = with the anchor's batch statistics (a member holding the current
    # weights reproduces the anchor) | running = eval mode with stored statistics (docs/methods.md § SEC-Depth).
    norm: str = "batch"
    sample: str = "random"  # the member used at a step: uniform, seeded by the step (the paper: one per step)


@dataclass
class SpreadStat:
    """The variance trigger's statistic: Var(a − n) and Var(a − p) over the pixels of one step."""

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


@dataclass
class Observation:
    """What one SECL step saw: its step index (before the update), the member used and its age, the loss's
    J_AN and J_AP (batch means), and the variance statistic."""

    step: int
    member: int
    age: int
    j_an: float
    j_ap: float
    spread: SpreadStat


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
    """One step's negative: member ``member`` (``age`` steps old), run on demand on a view of the whole batch."""

    member: int
    age: int
    queue: LatencyQueue = field(repr=False)
    ctx: StepContext = field(repr=False)

    def disp(self, view: str) -> Tensor:
        """B×1×H×W sigmoid disparity of the member on ``view`` (all rows, no gradient; once per step and view)."""
        return self.ctx.memo(("latency_queue", self.member, view), lambda: self.queue.run_member(self.ctx, self.member,
                                                                                                 view))

    def observe(self, anchor: Tensor, positive: Tensor, negative: Tensor, j_an: float, j_ap: float) -> Observation:
        """Record this step's statistic for the trigger (anchor/positive/negative: the rows the loss used)."""
        obs = Observation(self.ctx.state.step, self.member, self.age, float(j_an), float(j_ap),
                          spread_statistic(anchor, positive, negative))
        self.queue.observation = obs
        return obs

    def refresh_counts(self) -> dict[str, int]:
        """The queue's cumulative refreshes by reason (``periodic``, ``forced``) and observed SECL steps, a copy."""
        return dict(self.queue.counts)


@register_provider
class LatencyQueue(Provider):
    """Frozen snapshots of the depth network at earlier training stages (see the module docstring)."""

    name = "latency_queue"
    Config = LatencyQueueConfig
    stateful = True

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        checks = [(cfg.size >= 1, f"size={cfg.size}: need at least one member"),
                  (cfg.refresh_every >= 1, f"refresh_every={cfg.refresh_every}: must be >= 1"),
                  (0.0 <= cfg.omega < 1.0, f"omega={cfg.omega}: must lie in [0, 1)"),
                  (cfg.storage_dtype in STORAGE_DTYPES,
                   f"storage_dtype={cfg.storage_dtype!r}: use one of {sorted(STORAGE_DTYPES)}"),
                  (cfg.norm in NORMS, f"norm={cfg.norm!r}: use one of {NORMS}"),
                  (cfg.trigger in TRIGGERS, f"trigger={cfg.trigger!r}: use one of {TRIGGERS}"),
                  (cfg.trigger_cooldown >= 0, f"trigger_cooldown={cfg.trigger_cooldown}: must be >= 0"),
                  (cfg.sample == "random", f"sample={cfg.sample!r}: only 'random' is implemented")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"providers.latency_queue.{message}")

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        self.members: list[dict[str, Tensor]] = []
        self.refreshed_at: list[int] = []  # optimiser steps done when each member was last written
        self.versions: list[int] = []  # bumps on every write (the worker reloads only on change)
        self.init_step = -1
        self.last_periodic = -1
        self.last_forced = -(10**9)
        self.counts = {"periodic": 0, "forced": 0, "observed": 0}
        self.negative_ages: list[int] = []  # age of the negative of every SECL step that was applied
        self.refresh_log: list[tuple[int, int, str]] = []  # (steps done, member, reason) of every refresh
        self.observation: Observation | None = None
        self._source: list[nn.Module] = []  # the trained depth net (a list: not a submodule)
        self._worker: list[nn.Module] = []  # frozen network that runs members (not a submodule)
        self._worker_holds: tuple[int, int] | None = None
        self._float_params: set[str] = set()
        self._device = torch.device("cpu")
        self._seed = int(root_cfg.train.seed)

    # -- set-up --------------------------------------------------------------------------------------
    def setup(self, models: TrainModels) -> None:
        """Keep a reference to the trained depth net and build the frozen worker next to it."""
        depth = models.depth
        self._source = [depth]
        self._device = next(depth.parameters()).device
        self._float_params = {n for n, p in depth.named_parameters() if p.is_floating_point()}
        # In the step's numerics (bf16 conv weights under bf16): the members' values, as autocast would cast them.
        worker = in_step_numerics(copy.deepcopy(depth).eval().requires_grad_(False), self.root_cfg.train)
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

    @property
    def min_age(self) -> int:
        """Youngest member that may fire the margin trigger (``trigger_min_age``; -1 = T_u)."""
        return int(self.cfg.refresh_every if self.cfg.trigger_min_age < 0 else self.cfg.trigger_min_age)

    def age(self, member: int, step: int) -> int:
        """Optimiser steps between member ``member``'s last write and ``step`` (steps done before this one)."""
        return step - self.refreshed_at[member]

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

    def refresh(self, step: int, member: int | None = None, reason: str = "periodic") -> int:
        """Apply θ*_k ← ω·θ*_k + (1 − ω)·θ to ``member`` (default: the oldest); returns its index."""
        if reason not in REASONS:
            raise ValueError(f"refresh reason {reason!r}: use one of {REASONS}")
        k = self.oldest() if member is None else member
        with torch.no_grad():
            ema_(self.members[k], self._source[0].state_dict(), float(self.cfg.omega), self._float_params)
        self.refreshed_at[k] = step
        self.versions[k] += 1
        self.counts[reason] += 1
        self.refresh_log.append((step, k, reason))
        return k

    # -- per step ------------------------------------------------------------------------------------
    def _load_worker(self, k: int) -> nn.Module:
        """Load member k into the worker unless it already holds that version."""
        worker = self.worker
        if self._worker_holds != (k, self.versions[k]):
            worker.load_state_dict(self.members[k])  # copy_ casts to the worker's dtypes and moves to its device
            self._worker_holds = (k, self.versions[k])
        return worker

    def sample_member(self, step: int) -> int:
        """The member used at ``step``: uniform, from a generator seeded by (train.seed, step) — the same on every
        data-parallel rank whatever its batch holds, and the same after a resume."""
        generator = torch.Generator().manual_seed(self._seed * 1_000_003 + step)
        return int(torch.randint(len(self.members), (1,), generator=generator))

    def run_member(self, ctx: StepContext, member: int, view: str) -> Tensor:
        """Member ``member``'s full-resolution sigmoid disparity on ``view`` of the whole batch (no gradient):
        the whole batch, so that with ``norm: batch`` BatchNorm sees the statistics the anchor saw."""
        return ctx.run_depth(self._load_worker(member), ctx.image(view), grad=False).disp[0].detach()

    def forward(self, ctx: StepContext) -> QueueNegative | None:
        """This step's sampled member (None before the warm-up has filled the queue)."""
        if not self.ready:
            return None
        k = self.sample_member(ctx.state.step)
        return QueueNegative(member=k, age=self.age(k, ctx.state.step), queue=self, ctx=ctx)

    def _reduce(self, obs: Observation | None) -> tuple[float, float, float, int]:
        """(J_AN, Var(a − n), Var(a − p)) averaged over the data-parallel ranks that observed this step, and how
        many did (0: none). Every rank calls it on every step once the queue is filled."""
        values = torch.tensor([obs.j_an, obs.spread.an, obs.spread.ap, 1.0] if obs else [0.0] * 4,
                              dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            values = values.to(self._device)
            dist.all_reduce(values)
            values = values.cpu()
        j_an, an, ap, n = values.tolist()
        return (j_an / n, an / n, ap / n, int(n)) if n else (0.0, 0.0, 0.0, 0)

    def _forced_member(self, j_an: float, an: float, ap: float, member: int, age: int) -> int | None:
        """The member a forced refresh rewrites (see the module docstring), or None."""
        if self.cfg.trigger == "variance":
            return self.oldest() if an < float(self.cfg.trigger_ratio) * ap else None
        fires = j_an < float(self.cfg.trigger_margin) and age >= self.min_age
        return member if fires else None

    def after_step(self, ctx: StepContext) -> None:
        """Fill the queue at the end of the warm-up; record the step's negative; refresh periodically and when
        the trigger fires (only with a statistic observed at this very step). Identical on every rank: the
        statistic is averaged over ranks, the member and its age are the same on every rank."""
        step = ctx.state.step + 1  # optimiser steps done, counting this one
        obs, self.observation = self.observation, None
        if obs is not None and obs.step != ctx.state.step:
            obs = None  # left by a step that never reached after_step (skipped): not this step's statistic
        if not self.ready:
            if step >= self.warmup_steps(ctx.state.steps_per_epoch):
                self._initialise(step)
            return
        j_an, an, ap, observed = self._reduce(obs)
        forced = None
        if observed:
            member = self.sample_member(ctx.state.step)
            age = self.age(member, ctx.state.step)
            self.negative_ages.append(age)
            self.counts["observed"] += 1
            if self.cfg.forced_refresh and not self.cfg.frozen:
                forced = self._forced_member(j_an, an, ap, member, age)
        if self.cfg.frozen:
            return
        if step - self.last_periodic >= self.cfg.refresh_every:
            self.refresh(step, reason="periodic")
            self.last_periodic = step
        if forced is not None and step - self.last_forced >= self.cfg.trigger_cooldown:
            self.refresh(step, forced, reason="forced")
            self.last_forced = step

    # -- record --------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts by reason, the forced-refresh rate per SECL step and the negatives' ages (for the tables)."""
        return queue_summary(self.get_extra_state())

    # -- checkpoints ---------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The queue's whole training state (plain values and tensors: loads with weights_only=True)."""
        return {
            "version": STATE_VERSION, "members": self.members, "refreshed_at": list(self.refreshed_at),
            "versions": list(self.versions), "init_step": self.init_step, "last_periodic": self.last_periodic,
            "last_forced": self.last_forced, "counts": dict(self.counts), "negative_ages": list(self.negative_ages),
            "refresh_log": [list(event) for event in self.refresh_log], "trigger": self.cfg.trigger,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("version") not in (1, STATE_VERSION):
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
        self.counts = {"periodic": 0, "forced": 0, "observed": 0, **{k: int(v) for k, v in state["counts"].items()}}
        self.negative_ages = [int(x) for x in state.get("negative_ages", [])]  # version 1 kept no record
        self.refresh_log = [(int(s), int(k), str(r)) for s, k, r in state.get("refresh_log", [])]
        self.observation = None
        self._worker_holds = None

    def stored_bytes(self) -> int:
        """Bytes held by the stored members (the compact copies, not the worker)."""
        return sum(t.numel() * t.element_size() for m in self.members for t in m.values())


def queue_summary(state: dict[str, Any]) -> dict[str, Any]:
    """From a queue's extra state (a checkpoint's ``providers.latency_queue._extra_state``): refresh counts by
    reason, SECL steps seen, the forced-refresh rate per SECL step, and the negatives' age distribution."""
    counts = {k: int(v) for k, v in state.get("counts", {}).items()}
    ages = sorted(int(a) for a in state.get("negative_ages", []))
    observed = counts.get("observed", 0)
    out: dict[str, Any] = {"counts": counts, "trigger": state.get("trigger", "variance"),
                           "forced_rate": counts.get("forced", 0) / observed if observed else None,
                           "negatives": len(ages)}
    if ages:
        def quantile(q: float) -> int:
            return ages[min(len(ages) - 1, int(q * len(ages)))]

        out["age"] = {"min": ages[0], "p10": quantile(0.1), "median": quantile(0.5), "p90": quantile(0.9),
                      "max": ages[-1], "mean": sum(ages) / len(ages)}
    return out
