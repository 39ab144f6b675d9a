"""SEC-Depth: soft bins, JS divergence, margins/ramps, SECL against an independent computation (value, gradient
direction, what is detached, which rows and views), the latency queue's refresh rule and trigger on real forward
passes, the controls (positive-only, frozen queue), exact resume with the queue, no gradients into the queue, a
2-process data-parallel run with the queue, and SEC on a constructed WeatherKITTI fixture."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from robustdepth.checkpoint import load_checkpoint
from robustdepth.config import ConfigError
from robustdepth.configure import load_config
from robustdepth.data.base import color_key
from robustdepth.losses.sec import (
    SECLoss,
    exp_ramp,
    histogram_js,
    js_divergence,
    linear_ramp,
    margin_alpha1,
    pixel_js,
    secl,
    soft_bins,
)
from robustdepth.networks import DepthNet
from robustdepth.providers.latency_queue import LatencyQueue, Observation, SpreadStat, queue_summary, spread_statistic
from robustdepth.training.context import StepContext, StepState, TrainModels
from robustdepth.training.trainer import Trainer, train
from tests.conftest import corridor_overrides, run_two_processes

REPO = Path(__file__).resolve().parents[1]
FAST = {"data.width": 96, "degrade.every_n_steps": 1, "providers.latency_queue.warmup_steps": 1,
        "providers.latency_queue.refresh_every": 2}


def _dists(n: int, bins: int, seed: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, bins, generator=torch.Generator().manual_seed(seed)) * 3, dim=-1)


def test_js_divergence_properties_and_reference() -> None:
    p, q = _dists(50, 64, 0), _dists(50, 64, 1)
    assert torch.allclose(js_divergence(p, p), torch.zeros(50), atol=1e-7)
    assert torch.allclose(js_divergence(p, q), js_divergence(q, p))
    # scipy's jensenshannon is the square root of JS in natural log; eps in the logs changes ~1e-7
    reference = torch.tensor(jensenshannon(p.double().numpy(), q.double().numpy(), axis=1) ** 2)
    assert torch.allclose(js_divergence(p, q).double(), reference, atol=1e-6)
    disjoint = torch.eye(64)[:2]  # one-hot on different bins: the maximum, ln 2
    value = js_divergence(disjoint[:1], disjoint[1:])
    assert abs(float(value) - math.log(2)) < 1e-6
    assert float(js_divergence(p, q).max()) <= math.log(2)


def test_soft_bins_normalised_and_peaked() -> None:
    x = torch.rand(2, 1, 8, 12)
    bins = soft_bins(x, 64)
    assert bins.shape == (2, 1, 8, 12, 64)
    assert torch.allclose(bins.sum(-1), torch.ones(2, 1, 8, 12), atol=1e-6)
    nearest = torch.clamp((x * 64).long(), max=63)  # centre (n + ½)/64 closest to x
    assert torch.equal(bins.argmax(-1), nearest)


def test_margin_and_ramp_schedules() -> None:
    assert margin_alpha1(0.0) == pytest.approx(0.32)
    assert margin_alpha1(0.5) == pytest.approx(0.3 * math.exp(-7.5) + 0.02)
    assert margin_alpha1(1.0) == pytest.approx(0.02, abs=1e-7)
    assert [exp_ramp(e) for e in (0, 2, 4, 6, 7, 20)] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    assert exp_ramp(1) == pytest.approx(0.01 * math.sqrt(2))
    assert [linear_ramp(e) for e in (0, 2.5, 5, 9)] == pytest.approx([0.01, 0.055, 0.1, 0.1])


@pytest.mark.parametrize("fn", [pixel_js, histogram_js])
def test_chunked_divergences_equal_unchunked_with_gradients(fn) -> None:
    gen = torch.Generator().manual_seed(3)
    anchor = torch.rand(2, 1, 16, 20, generator=gen).requires_grad_(True)
    positive, negative = torch.rand(2, 1, 16, 20, generator=gen), torch.rand(2, 1, 16, 20, generator=gen)
    results = []
    for chunk in (0, 37):
        anchor.grad = None
        j_ap, j_an = fn(anchor, positive, negative, 64, None, chunk)
        (j_ap - 2 * j_an).backward()
        results.append((j_ap.detach(), j_an.detach(), anchor.grad.clone()))
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert results[0][2].abs().sum() > 0


def _queue(size: int = 2, **cfg_extra: object) -> tuple[LatencyQueue, DepthNet]:
    cfg = load_config("sec_monodepth2", [f"providers.latency_queue.size={size}",
                                         *(f"providers.latency_queue.{k}={v}" for k, v in cfg_extra.items())])
    net = DepthNet(18, scales=[0, 1, 2, 3])
    queue = LatencyQueue(cfg.providers.latency_queue, cfg)
    queue.setup(TrainModels(net))
    return queue, net


def _ctx(step: int, steps_per_epoch: int = 100) -> StepContext:
    cfg = load_config("sec_monodepth2")
    batch = {color_key(0): torch.zeros(1, 3, 64, 96)}
    return StepContext(batch, lambda x: x, None, None, StepState(step, 1000, 0, steps_per_epoch), cfg,
                       torch.Generator(), torch.device("cpu"))


def test_queue_refresh_rule_is_the_ema_and_round_robin() -> None:
    queue, net = _queue(size=2, warmup_steps=3, refresh_every=5, storage_dtype="bf16")
    queue.after_step(_ctx(1))
    assert not queue.ready  # warm-up: 2 steps done of 3
    queue.after_step(_ctx(2))
    assert queue.ready and queue.refreshed_at == [3, 3]
    old = {k: v.clone() for k, v in queue.members[0].items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)
        net.encoder.encoder.bn1.running_var.mul_(3.0)
        net.encoder.encoder.bn1.num_batches_tracked.add_(7)
    current = net.state_dict()
    assert queue.oldest() == 0 and queue.refresh(step=4) == 0
    new = queue.members[0]
    weight = "decoder.decoder.0.conv.conv.weight"
    expected = (0.01 * old[weight].float() + 0.99 * current[weight]).to(torch.bfloat16)
    assert new[weight].dtype == torch.bfloat16 and torch.equal(new[weight], expected)
    var = "encoder.encoder.bn1.running_var"
    assert new[var].dtype == torch.float32  # BatchNorm statistics stay fp32
    assert torch.allclose(new[var], 0.01 * old[var] + 0.99 * current[var], rtol=1e-6)
    tracked = "encoder.encoder.bn1.num_batches_tracked"
    assert torch.equal(new[tracked], current[tracked])  # integer buffers are copied
    assert torch.equal(queue.members[1][weight], old[weight])  # the other member is untouched
    assert queue.oldest() == 1  # round-robin: member 1 is now the oldest


def _obs(step: int, member: int, age: int, j_an: float, spread: tuple[float, float] = (1.0, 1.0)) -> Observation:
    return Observation(step=step, member=member, age=age, j_an=j_an, j_ap=0.05, spread=SpreadStat(*spread))


def _observe(queue: LatencyQueue, step: int, member: int, j_an: float,
             spread: tuple[float, float] = (1.0, 1.0)) -> None:
    """What SECL leaves for after_step at ``step``, with ``member`` the member of that step."""
    queue.sample_member = lambda _step, k=member: k
    queue.observation = _obs(step, member, queue.age(member, step), j_an, spread)


def test_variance_statistic_and_the_literal_trigger_on_constructed_cases() -> None:
    """trigger=variance (the notes' literal rule): fires when Var(a − n) < Var(a − p) and refreshes the OLDEST."""
    a = torch.zeros(1, 1, 4, 4)
    p = torch.arange(16.0).view(1, 1, 4, 4) / 16
    stat = spread_statistic(a, p, 2 * p)
    assert stat.ap == pytest.approx(float(p.var())) and stat.an == pytest.approx(4 * float(p.var()))
    assert spread_statistic(a, p, p + 0.3).an == pytest.approx(float(p.var()))  # blind to a global offset
    queue, _ = _queue(size=3, warmup_steps=0, refresh_every=100, trigger="variance")
    queue.after_step(_ctx(0))  # fills the queue at step 1
    queue.refreshed_at = [1, 0, 1]  # member 1 is the oldest
    _observe(queue, 1, member=2, j_an=0.5, spread=(0.3, 0.2))  # negatives still far: no refresh
    queue.after_step(_ctx(1))
    assert queue.counts["forced"] == 0 and queue.refreshed_at == [1, 0, 1]
    _observe(queue, 2, member=2, j_an=0.5, spread=(0.1, 0.2))  # closer than the positive
    queue.after_step(_ctx(2))
    assert queue.counts["forced"] == 1 and queue.refreshed_at == [1, 3, 1]  # the oldest, not the sampled one
    assert queue.refresh_log == [(3, 1, "forced")]


def test_margin_trigger_fires_on_its_condition_and_refreshes_the_member_that_fired() -> None:
    """trigger=margin: fires iff J_AN < trigger_margin AND the sampled member is at least trigger_min_age old;
    refreshes that member; respects the cooldown; periodic refreshes go to the oldest."""
    queue, _ = _queue(size=3, warmup_steps=0, refresh_every=100, trigger_margin=0.005, trigger_min_age=5,
                      trigger_cooldown=3)
    queue.after_step(_ctx(0))  # filled after step 1
    queue.refreshed_at = [1, 0, 1]  # member 1 is the oldest
    assert queue.min_age == 5
    cases = [  # (step, member, J_AN, fires)
        (9, 2, 0.004, True),    # inside α2, age 8 ≥ 5: member 2 (not the oldest, 1) is refreshed
        (10, 0, 0.001, False),  # cooldown: 11 − 10 < 3
        (13, 0, 0.006, False),  # outside the margin
        (14, 0, 0.0049, True),  # inside, old enough, cooldown over
        (18, 0, 0.0, False),    # member 0 was refreshed at 15: age 3 < 5 (a fresh snapshot never fires)
    ]
    fired = []
    for step, member, j_an, _ in cases:
        before = list(queue.refreshed_at)
        _observe(queue, step, member, j_an)
        queue.after_step(_ctx(step))
        fired.append(queue.refreshed_at != before)
        if queue.refreshed_at != before:
            assert [k for k in range(3) if queue.refreshed_at[k] != before[k]] == [member]
            assert queue.refreshed_at[member] == step + 1
    assert fired == [c[3] for c in cases]
    assert queue.counts == {"periodic": 0, "forced": 2, "observed": 5}
    queue.observation = None
    queue.after_step(_ctx(100))  # 101 − 1 ≥ refresh_every: periodic refresh of the oldest (member 1)
    assert queue.refresh_log[-1] == (101, 1, "periodic") and queue.counts["periodic"] == 1


def test_min_age_defaults_to_the_refresh_interval() -> None:
    queue, _ = _queue(size=2, refresh_every=7)
    assert queue.min_age == 7 and queue.cfg.trigger == "margin"


def test_a_statistic_left_by_a_skipped_step_is_not_used_by_the_next_one() -> None:
    """A step that never reached after_step (non-finite, skipped) leaves its observation behind: the next
    step must neither fire on it nor count its negative."""
    queue, _ = _queue(size=2, warmup_steps=0, refresh_every=100, trigger_min_age=0)
    queue.after_step(_ctx(0))
    queue.observation = _obs(4, member=0, age=3, j_an=0.0)  # made at step 4, which was skipped
    queue.after_step(_ctx(5))
    assert queue.counts == {"periodic": 0, "forced": 0, "observed": 0} and queue.negative_ages == []
    _observe(queue, 6, member=0, j_an=0.0)  # this step's own statistic does fire (member 0 is 5 steps old)
    queue.after_step(_ctx(6))
    assert queue.counts["forced"] == 1 and queue.negative_ages == [5]


def test_frozen_queue_is_filled_once_and_never_refreshed() -> None:
    queue, _ = _queue(size=2, warmup_steps=2, refresh_every=1, trigger_min_age=0, frozen=True)
    for step in range(1, 12):
        if queue.ready:
            _observe(queue, step, 0, 0.0)
        queue.after_step(_ctx(step))
    assert queue.ready and queue.refreshed_at == [2, 2] and queue.refresh_log == []
    assert queue.negative_ages == list(range(10))  # recorded on every SECL step, ages grow without bound


def test_queue_summary_reports_rate_and_age_distribution() -> None:
    state = {"counts": {"periodic": 3, "forced": 2, "observed": 8}, "negative_ages": [5, 1, 9, 40, 12, 3, 7, 20],
             "trigger": "margin"}
    summary = queue_summary(state)
    assert summary["forced_rate"] == pytest.approx(0.25) and summary["negatives"] == 8
    assert summary["age"] == {"min": 1, "p10": 1, "median": 9, "p90": 40, "max": 40, "mean": pytest.approx(97 / 8)}
    assert queue_summary({"counts": {"periodic": 1, "forced": 0}})["forced_rate"] is None  # version-1 state


def test_resume_restores_queue_bit_for_bit(corridor: Path, tmp_path: Path) -> None:
    cfg = load_config("sec_monodepth2", corridor_overrides(corridor, **{"optim.max_steps": 4, **FAST}))
    straight = train(cfg, run_dir=tmp_path / "a")
    train(cfg, run_dir=tmp_path / "b", stop_at=2)
    resumed = train(cfg, run_dir=tmp_path / "b", resume=tmp_path / "b")
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    for key, value in a["models"]["depth"].items():
        assert torch.equal(value, b["models"]["depth"][key]), f"depth.{key} differs after resume"
    qa, qb = a["providers"]["latency_queue"]["_extra_state"], b["providers"]["latency_queue"]["_extra_state"]
    assert qa["counts"]["forced"] + qa["counts"]["periodic"] > 0, "the queue was never refreshed"
    assert {k: v for k, v in qa.items() if k != "members"} == {k: v for k, v in qb.items() if k != "members"}
    assert len(qa["members"]) == 3
    for ma, mb in zip(qa["members"], qb["members"], strict=True):
        for key, value in ma.items():
            assert value.dtype == mb[key].dtype and torch.equal(value, mb[key]), f"queue {key} differs"


def test_queue_gets_no_gradients_and_is_not_optimised(corridor: Path, tmp_path: Path) -> None:
    cfg = load_config("sec_monodepth2", corridor_overrides(corridor, **{"optim.max_steps": 2, **FAST,
                                                                         "providers.latency_queue.warmup_steps": 0}))
    trainer = Trainer(cfg, run_dir=tmp_path)
    logs = [trainer.train_step(batch) for batch in trainer._batches()]
    assert "sec/j_an" in logs[1], "the negative term never ran"
    queue = trainer.providers.providers["latency_queue"]
    assert list(queue.parameters()) == [] and list(trainer.providers.parameters()) == []
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    for p in queue.worker.parameters():
        assert not p.requires_grad and p.grad is None and id(p) not in optimised
    batch_norms = [m for m in queue.worker.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert batch_norms and all(m.training and m.momentum == 0.0 for m in batch_norms)  # norm: batch
    assert not any(m.training for m in queue.worker.modules() if m not in batch_norms and list(m.parameters(False)))
    assert all(not t.requires_grad for m in queue.members for t in m.values())
    assert not any(p is q for p in queue.worker.parameters() for q in trainer.models.parameters())



@pytest.mark.slow
def test_two_process_data_parallel_step_with_queue(corridor: Path, tmp_path: Path) -> None:
    proc = run_two_processes("sec_ddp_worker.py", str(corridor), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["world"] == 2
    params = [k for k, v in r0["final"].items() if v.is_floating_point() and "running" not in k]
    for key in params:
        assert torch.equal(r0["final"][key], r1["final"][key]), f"{key} differs between ranks"
    assert any(not torch.equal(r0["final"][k], r0["initial"][k]) for k in params), "nothing was trained"
    q0, q1 = r0["queue"]["_extra_state"], r1["queue"]["_extra_state"]
    assert len(q0["members"]) == 3 and q0["counts"] == q1["counts"] and q0["refreshed_at"] == q1["refreshed_at"]
    for m0, m1 in zip(q0["members"], q1["members"], strict=True):
        for key in m0:
            if "running" not in key and "num_batches" not in key:
                assert torch.equal(m0[key], m1[key]), f"queue {key} differs between ranks"
    assert all(g is None for g in r0["grads"] + r1["grads"])
    assert np.isfinite(float(sum(v.float().sum() for v in q0["members"][0].values())))


def test_intermittent_terms_reach_tensorboard(corridor: Path, tmp_path: Path) -> None:
    """With S = 2 and log_every = 4 no logging step is a degraded one; SECL must still be logged (window mean)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config("sec_monodepth2", corridor_overrides(corridor, **{
        "optim.max_steps": 8, **FAST, "degrade.every_n_steps": 2, "providers.latency_queue.warmup_steps": 0,
        "train.log_every": 4}))
    train(cfg, run_dir=tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "loss/sec" in scalars and "sec/j_an" in scalars, scalars
    diagnostics = ("sec/j_ap", "sec/negative_age", "sec/hinge_active", "sec/refreshes_forced", "sec/refreshes_periodic")
    assert set(diagnostics) <= set(scalars), scalars
    assert [e.step for e in events.Scalars("loss/sec")] == [4, 8]


def test_log_window_means_losses_and_keeps_latest_diagnostics() -> None:
    from robustdepth.training.logging import LogWindow

    window = LogWindow()
    window.add({"loss/total": 1.0, "lr": 0.1})
    window.add({"loss/total": 3.0, "loss/sec": 0.5, "lr": 0.2, "sec/j_an": 0.07})
    assert window.flush() == {"loss/total": 2.0, "loss/sec": 0.5, "lr": 0.2, "sec/j_an": 0.07}
    assert window.flush() == {}


@pytest.mark.parametrize("norm", ["batch", "running"])
def test_member_with_current_weights_matches_the_anchor_only_with_batch_norm(norm: str) -> None:
    """norm=batch: a member holding the current weights reproduces the training pass (J_AN = 0) and leaves its
    running statistics alone; norm=running (eval mode) differs by the normalisation gap alone."""
    queue, net = _queue(size=1, warmup_steps=0, storage_dtype="fp32", norm=norm)
    queue.after_step(_ctx(0))
    worker = queue._load_worker(0)
    image = torch.rand(4, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    running = {k: v.clone() for k, v in worker.state_dict().items() if "running" in k}
    net.train()
    with torch.no_grad():
        anchor, negative = net(image).disp[0], worker(image).disp[0]
    j_ap, _ = pixel_js(anchor, negative, None, 64, None)
    if norm == "batch":
        assert torch.allclose(anchor, negative, atol=1e-6) and float(j_ap) < 1e-4
        assert all(torch.equal(v, worker.state_dict()[k]) for k, v in running.items())
    else:
        assert float(j_ap) > 0.01


def test_worker_in_bf16_training_keeps_bf16_conv_weights_and_the_same_member_pass() -> None:
    """Under train.precision=bf16 the worker stores its conv weights in bf16 (the values autocast casts the fp32
    worker's to, BatchNorm in fp32), so a member's pass in a bf16 step equals the fp32 worker's bit for bit."""
    passes = []
    for precision in ("bf16", "fp32"):
        cfg = load_config("sec_monodepth2", ["providers.latency_queue.size=1", "providers.latency_queue.warmup_steps=0",
                                             "train.precision=bf16", "train.channels_last=true"])
        if precision == "fp32":  # the worker as before: built from a config without bf16
            cfg.train.precision = "fp32"
        torch.manual_seed(0)
        queue = LatencyQueue(cfg.providers.latency_queue, cfg)
        queue.setup(TrainModels(DepthNet(18, scales=[0, 1, 2, 3]).to(memory_format=torch.channels_last)))
        queue.after_step(_ctx(0))
        worker = queue._load_worker(0)
        convs = {m.weight.dtype for m in worker.modules() if isinstance(m, torch.nn.Conv2d)}
        norms = {m.weight.dtype for m in worker.modules() if isinstance(m, torch.nn.BatchNorm2d)}
        assert (convs, norms) == ({torch.bfloat16 if precision == "bf16" else torch.float32}, {torch.float32})
        cfg.train.precision = "bf16"  # both members run in a bf16 step
        image = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
        ctx = StepContext({color_key(0, aug=True): image, color_key(0): image}, lambda x: x, None, None,
                          StepState(1, 1000, 0, 100), cfg, torch.Generator(), torch.device("cpu"))
        passes.append(queue.run_member(ctx, 0, "clean_aug"))
    assert passes[0].dtype == torch.float32 and torch.equal(passes[0], passes[1])


# -- SECL against an independent computation ------------------------------------------------------------------
class FakeNegative:
    """A queue negative whose disparity per view is given (so a wrong view gives a wrong value)."""

    def __init__(self, maps: dict[str, torch.Tensor], member: int = 1, age: int = 7) -> None:
        self.maps, self.member, self.age = maps, member, age
        self.counts = {"periodic": 2, "forced": 1, "observed": 0}
        self.seen: tuple | None = None

    def refresh_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def disp(self, view: str) -> torch.Tensor:
        return self.maps[view]

    def observe(self, anchor, positive, negative, j_an: float, j_ap: float) -> Observation:
        self.seen = (anchor, positive, negative, j_an, j_ap)
        return Observation(0, self.member, self.age, j_an, j_ap, spread_statistic(anchor, positive, negative))


class FakeCtx:
    """The part of StepContext SECL reads: per-view disparities (leaf tensors), rows, progress, the queue."""

    def __init__(self, maps: dict[str, torch.Tensor], is_degraded: list[bool], progress: float,
                 negative: FakeNegative | None) -> None:
        self.maps, self.negative = maps, negative
        self.batch = {"is_degraded": torch.tensor(is_degraded), color_key(0): torch.zeros(len(is_degraded), 3, 4, 4)}
        self.degraded_active, self.device = True, torch.device("cpu")
        self.state = StepState(round(progress * 1000), 1000, 0, 100)
        self.batch_size = len(is_degraded)

    def disp_full(self, view: str, scale: int, grad: bool = True) -> torch.Tensor:
        assert scale == 0
        return self.maps[view] if grad else self.maps[view].detach()

    def provide(self, name: str) -> FakeNegative | None:
        assert name == "latency_queue"
        return self.negative


def _smooth(seed: int, rows: int = 3, h: int = 12, w: int = 16) -> torch.Tensor:
    """Non-constant sigmoid-disparity-like maps in (0, 1): a ramp plus a per-image random pattern."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1.5, 1.5, w).view(1, 1, 1, w) + torch.linspace(-0.5, 0.5, h).view(1, 1, h, 1)
    return torch.sigmoid(ramp + 0.5 * torch.randn(rows, 1, h, w, generator=gen))


def _reference_secl(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, rows: list[int], alpha1: float,
                    alpha2: float = 0.005, delta: float = 1.0, detach_factor: bool = False,
                    bins: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_c written out from its definition in float64: Gaussian soft bins (explicit exp / sum), JS with the
    mixture M, per-pixel JS averaged over the selected rows' pixels, then the two hinges on the means."""
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    h = 1.0 / bins

    def encode(x: torch.Tensor) -> torch.Tensor:
        values = x[rows].double().reshape(len(rows), -1, 1)
        weights = torch.exp(-((values - centres) ** 2) / (2 * h * h))
        return weights / weights.sum(-1, keepdim=True)

    def js(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # per row: mean over pixels
        m = (u + v) / 2
        kl_u = (u * (torch.log(u + 1e-8) - torch.log(m + 1e-8))).sum(-1)
        kl_v = (v * (torch.log(v + 1e-8) - torch.log(m + 1e-8))).sum(-1)
        return (0.5 * kl_u + 0.5 * kl_v).mean(-1)

    pa = encode(a)
    j_ap_rows, j_an_rows = js(pa, encode(p)), js(pa, encode(n))
    j_ap, j_an = j_ap_rows.mean(), j_an_rows.mean()
    factor = j_an.detach() if detach_factor else j_an
    loss = j_ap + delta * torch.clamp(alpha1 - j_an, min=0) + factor * torch.clamp(alpha2 - j_an, min=0)
    return loss, j_ap, j_an, j_an_rows


def _views(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> tuple[dict, dict]:
    """Student maps and negative maps per view; the clean views of the negative are deliberately different."""
    clean = _smooth(99, a.shape[0], a.shape[2], a.shape[3])
    student = {"input": a, "degraded": a, "clean_aug": p, "clean": _smooth(98, a.shape[0], a.shape[2], a.shape[3])}
    negative = {"input": n, "degraded": n, "clean_aug": clean, "clean": clean}
    return student, negative


def _term(**overrides: object) -> SECLoss:
    cfg = load_config("sec_monodepth2", [f"losses.sec.{k}={v}" for k, v in overrides.items()])
    return SECLoss(cfg.losses.sec, cfg)


@pytest.mark.parametrize(("case", "progress", "is_degraded", "options"), [
    ("alpha1_hinge", 0.1, [True, False, True], {}),           # J_AN between α2 and α1: the α1 hinge acts
    ("alpha2_term", 0.9, [True, False, True], {}),            # J_AN < α2: both hinges act
    ("alpha2_detached", 0.9, [True, False, True], {"stop_grad_j_factor": True}),
    ("all_rows", 0.1, [True, False, True], {"degraded_only": False}),
    ("delta_half", 0.1, [False, True, True], {"delta": 0.5}),
])
def test_secl_value_and_gradients_match_an_independent_computation(case: str, progress: float,
                                                                    is_degraded: list[bool], options: dict) -> None:
    a = _smooth(0).requires_grad_(True)
    p = (_smooth(0) * 0.9 + 0.05 * _smooth(1)).requires_grad_(True)  # the weather gap
    scale = 0.0015 if case.startswith("alpha2") else 0.02
    n = (a.detach() + scale * (2 * _smooth(2) - 1)).clamp(0, 1)  # a past self near the anchor
    student, negative = _views(a, p, n)
    term = _term(**options)
    ctx = FakeCtx(student, is_degraded, progress, FakeNegative(negative))
    loss, logs = term(ctx)
    rows = [i for i, d in enumerate(is_degraded) if d or options.get("degraded_only") is False]
    alpha1 = 0.3 * math.exp(-15 * progress) + 0.02
    a_ref = a.detach().double().requires_grad_(True)
    ref, j_ap, j_an, j_an_rows = _reference_secl(a_ref, p.detach(), n, rows, alpha1, delta=options.get("delta", 1.0),
                                                 detach_factor=bool(options.get("stop_grad_j_factor")))
    j_an, j_ap = j_an.detach(), j_ap.detach()
    if case == "alpha1_hinge" or case == "all_rows":
        assert 0.005 < float(j_an) < alpha1, float(j_an)  # the regime this case is about
    if case.startswith("alpha2"):
        assert float(j_an) < 0.005, float(j_an)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-4, abs=1e-7)
    assert logs["j_ap"] == pytest.approx(float(j_ap), rel=1e-4) and logs["j_an"] == pytest.approx(float(j_an), rel=1e-4)
    assert logs["alpha1"] == pytest.approx(alpha1)
    assert logs["hinge_active"] == pytest.approx(float((j_an_rows < alpha1).double().mean()))
    assert logs["member"] == 1 and logs["negative_age"] == 7
    loss.backward()
    ref.backward()
    assert torch.allclose(a.grad.double(), a_ref.grad, rtol=1e-3, atol=1e-9 + 1e-3 * float(a_ref.grad.abs().max()))
    assert p.grad is None  # the positive is stop-gradient
    assert a.grad[[i for i in range(3) if i not in rows]].abs().sum() == 0  # rows outside the loss get nothing


@pytest.mark.parametrize("detach", [False, True])
def test_secl_alpha2_term_on_its_own(detach: bool) -> None:
    """J·max(α2 − J, 0) is tiny next to the α1 hinge (≤ α2²/4), so it is pinned alone: α1 = 0 and J_AP = 0."""
    j_an = torch.tensor(0.002, dtype=torch.float64, requires_grad=True)
    loss = secl(torch.zeros((), dtype=torch.float64), j_an, alpha1=0.0, alpha2=0.005, delta=1.0,
                stop_grad_j_factor=detach)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.002 * 0.003, abs=1e-15)
    # d/dJ [J(α2 − J)] = α2 − 2J = 0.001; with the factor detached, d/dJ [J̄(α2 − J)] = −J = −0.002
    assert float(j_an.grad) == pytest.approx(-0.002 if detach else 0.001, abs=1e-12)
    outside = secl(torch.tensor(0.1), torch.tensor(0.2), alpha1=0.3, alpha2=0.005, delta=2.0)
    assert float(outside) == pytest.approx(0.1 + 2.0 * 0.1)  # J_AN > α2: only the α1 hinge


@pytest.mark.parametrize("detach", [False, True])
def test_secl_term_applies_the_alpha2_term(detach: bool) -> None:
    """Through the loss term: δ = 0 and P = A leave exactly J_AN·max(α2 − J_AN, 0), value and gradient."""
    a = _smooth(0).requires_grad_(True)
    n = (a.detach() + 0.0015 * (2 * _smooth(2) - 1)).clamp(0, 1)
    student, negative = _views(a, a.detach().clone(), n)
    loss, logs = _term(delta=0.0, stop_grad_j_factor=detach)(FakeCtx(student, [True, False, True], 0.9,
                                                                     FakeNegative(negative)))
    a_ref = a.detach().double().requires_grad_(True)
    ref = _reference_secl(a_ref, a.detach(), n, [0, 2], alpha1=0.0, delta=0.0, detach_factor=detach)[0]
    assert 0 < logs["j_an"] < 0.005 and float(ref.detach()) > 1e-6
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-4)
    loss.backward()
    ref.backward()
    # fp32 soft bins vs the fp64 reference: ~0.5 % apart; detaching the factor flips the gradient's sign
    assert torch.allclose(a.grad.double(), a_ref.grad, rtol=2e-2, atol=2e-2 * float(a_ref.grad.abs().max()))


def test_hinge_active_fraction_counts_rows_inside_alpha1() -> None:
    a = _smooth(0).requires_grad_(True)
    far = (a.detach() + 0.3 * (2 * _smooth(3) - 1)).clamp(0, 1)
    near = (a.detach() + 0.01 * (2 * _smooth(4) - 1)).clamp(0, 1)
    n = torch.cat([near[:1], far[1:2], far[2:]])  # row 0 inside α1, row 2 outside (row 1 is clean)
    student, negative = _views(a, _smooth(1), n)
    _, logs = _term()(FakeCtx(student, [True, False, True], 0.1, FakeNegative(negative)))
    assert logs["hinge_active"] == pytest.approx(0.5)


def test_negative_term_gradient_moves_the_anchor_away_from_its_past_self() -> None:
    """With P = A (no positive pull), a gradient-descent step on SECL increases JS(A, N)."""
    a0 = _smooth(0)
    n = (a0 + 0.02 * (2 * _smooth(2) - 1)).clamp(0, 1)
    a = a0.clone().requires_grad_(True)
    student, negative = _views(a, a0.clone(), n)
    loss, logs = _term()(FakeCtx(student, [True, True, True], 0.1, FakeNegative(negative)))
    assert 0.005 < logs["j_an"] < logs["alpha1"]
    loss.backward()
    assert a.grad.abs().sum() > 0
    stepped = (a0 - 0.05 * a.grad / a.grad.abs().max()).clamp(0, 1)
    before, after = (float(pixel_js(x, a0, n, 64, None)[1]) for x in (a0, stepped))
    assert after > before


def test_positive_only_control_is_js_of_anchor_and_positive_and_needs_no_queue() -> None:
    a, p = _smooth(0).requires_grad_(True), _smooth(1)
    student, _ = _views(a, p, _smooth(2))
    term = _term(negative=False)
    assert term.requires == () and SECLoss.requires == ("latency_queue",)
    loss, logs = term(FakeCtx(student, [True, False, True], 0.1, None))
    ref = _reference_secl(a.detach(), p, a.detach(), [0, 2], alpha1=0.0)[1]
    assert float(loss) == pytest.approx(float(ref), rel=1e-4) and "j_an" not in logs


def test_secl_refuses_a_batch_without_a_degraded_view() -> None:
    a = _smooth(0)
    ctx = FakeCtx({"input": a}, [True], 0.1, None)
    del ctx.batch["is_degraded"]
    with pytest.raises(ConfigError, match="degraded view"):
        _term()(ctx)


# -- the queue on real forward passes -----------------------------------------------------------------------
def _trainer(corridor: Path, tmp_path: Path, recipe: str = "sec_monodepth2", **extra: object) -> Trainer:
    overrides = {"optim.max_steps": 40, **FAST, "optim.batch_size": 2, "providers.latency_queue.warmup_steps": 0,
                 "providers.latency_queue.refresh_every": 1000, "providers.latency_queue.storage_dtype": "fp32",
                 "providers.latency_queue.size": 3, **extra}
    return Trainer(load_config(recipe, corridor_overrides(corridor, **overrides)), run_dir=tmp_path)


def test_margin_trigger_on_real_forward_passes(corridor: Path, tmp_path: Path) -> None:
    """A member that holds the current weights (J_AN ≈ 0) fires when it is old enough and is the member
    refreshed; a young one, or one far from the anchor, does not. Every step: fired ⇔ documented condition."""
    trainer = _trainer(corridor, tmp_path, **{"providers.latency_queue.trigger_min_age": 3})
    queue = trainer.providers.providers["latency_queue"]
    batches = trainer._batches()
    trainer.train_step(next(batches))  # fills the queue (warm-up 0)
    assert queue.ready
    gen = torch.Generator().manual_seed(5)
    far = {k: v + 0.5 * torch.randn(v.shape, generator=gen) if "decoder" in k and v.is_floating_point() else v
           for k, v in queue._snapshot().items()}
    # (sampled member, its content, its age before the step, expected to fire)
    plans = [(1, "current", 10, True), (2, "current", 1, False), (0, "far", 10, False), (2, "current", 4, True)]
    for member, content, age, expected in plans:
        step = trainer.step
        queue.members[member] = queue._snapshot() if content == "current" else {k: v.clone() for k, v in far.items()}
        queue.versions[member] += 1
        queue.refreshed_at = [step - 20, step - 20, step - 20]  # the oldest is member 0 unless it fires
        queue.refreshed_at[member] = step - age
        queue.sample_member = lambda _gen, k=member: k
        before = list(queue.refreshed_at)
        logs = trainer.train_step(next(batches))
        assert logs["sec/negative_age"] == age and logs["sec/member"] == member
        documented = logs["sec/j_an"] < queue.cfg.trigger_margin and age >= queue.min_age
        fired = queue.refreshed_at != before
        assert fired == documented == expected, (member, content, age, logs["sec/j_an"])
        if fired:
            assert queue.refresh_log[-1] == (step + 1, member, "forced")
            assert [k for k in range(3) if queue.refreshed_at[k] != before[k]] == [member]
        if content == "current":
            assert logs["sec/j_an"] < 1e-4  # the negative ran on the anchor's own (degraded) image
        else:
            assert logs["sec/j_an"] > 0.01
    assert queue.negative_ages[-4:] == [10, 1, 10, 4] and queue.counts["forced"] == 2


def test_negative_runs_on_the_degraded_view(corridor: Path, tmp_path: Path) -> None:
    """The negative is the member's pass on the anchor's image: the degraded copy, not the clean frame."""
    trainer = _trainer(corridor, tmp_path)
    queue = trainer.providers.providers["latency_queue"]
    batches = trainer._batches()
    trainer.train_step(next(batches))
    queue.sample_member = lambda _gen: 0
    logs = trainer.train_step(next(batches))
    ctx = trainer.last_ctx
    rows = ctx.batch["is_degraded"].bool()
    assert rows.any() and "sec/j_an" in logs
    negative = next(v for k, v in ctx._memo.items() if isinstance(k, tuple) and k[0] == "latency_queue")
    with torch.no_grad():
        degraded = queue.run_member(ctx, 0, "degraded")
        clean = queue.run_member(ctx, 0, "clean_aug")
    assert torch.equal(negative[rows], degraded[rows])
    assert not torch.allclose(negative[rows], clean[rows], atol=1e-3)
    assert logs["sec/j_ap"] > 1e-3  # clean and degraded views do differ


def test_skipped_step_leaves_no_statistic_for_the_next_step(corridor: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A SECL step whose loss is non-finite is skipped; the next (non-SECL) step must not fire on its J_AN."""
    trainer = _trainer(corridor, tmp_path, **{"degrade.every_n_steps": 2, "providers.latency_queue.trigger_min_age": 0})
    queue = trainer.providers.providers["latency_queue"]
    batches = trainer._batches()
    trainer.train_step(next(batches))  # step 0 (SECL, queue not ready yet) fills the queue
    trainer.train_step(next(batches))  # step 1: gate closed
    queue.members[0] = queue._snapshot()
    queue.versions[0] += 1
    queue.sample_member = lambda _gen: 0
    original = SECLoss.forward

    def poisoned(self, ctx):
        out = original(self, ctx)
        return (out[0] * float("nan"), out[1]) if out is not None else None

    monkeypatch.setattr(SECLoss, "forward", poisoned)
    logs = trainer.train_step(next(batches))  # step 2: SECL with J_AN ≈ 0, but non-finite → skipped
    assert trainer.skipped_steps == 1 and logs["sec/j_an"] < 1e-4
    monkeypatch.setattr(SECLoss, "forward", original)
    before = list(queue.refreshed_at)
    trainer.train_step(next(batches))  # step 3: gate closed, no statistic of its own
    assert queue.refreshed_at == before and queue.counts["forced"] == 0 and queue.counts["observed"] == 0


def test_negative_ages_follow_the_periodic_schedule(corridor: Path, tmp_path: Path) -> None:
    """Without forced refreshes, members are T_u apart: each negative's age is its step minus its member's
    last write, and the ages reach beyond one period (past stages, not the last step)."""
    trainer = _trainer(corridor, tmp_path, **{"providers.latency_queue.refresh_every": 2,
                                              "providers.latency_queue.forced_refresh": False,
                                              "providers.latency_queue.warmup_steps": 1})
    queue = trainer.providers.providers["latency_queue"]
    ages, expected = [], []
    for batch in trainer._batches():
        step = trainer.step
        written = list(queue.refreshed_at)
        logs = trainer.train_step(batch)
        if "sec/j_an" in logs:
            ages.append(int(logs["sec/negative_age"]))
            expected.append(step - written[int(logs["sec/member"])])
        if trainer.step >= 10:
            break
    assert ages == expected == queue.negative_ages and max(ages) >= 4
    assert [reason for _, _, reason in queue.refresh_log] == ["periodic"] * len(queue.refresh_log)
    assert [k for _, k, _ in queue.refresh_log] == [0, 1, 2, 0, 1][: len(queue.refresh_log)]  # round-robin


def test_positive_only_and_frozen_queue_recipes_train(corridor: Path, tmp_path: Path) -> None:
    positive = _trainer(corridor, tmp_path / "p", "sec_positive_only")
    assert "latency_queue" not in positive.providers.providers
    logs = [positive.train_step(b) for b, _ in zip(positive._batches(), range(3), strict=False)]
    secl = [lg for lg in logs if "loss/sec" in lg]  # steps with at least one degraded sample
    assert secl and all(lg["loss/sec"] == lg["sec/j_ap"] and "sec/j_an" not in lg for lg in secl)
    frozen = _trainer(corridor, tmp_path / "f", "sec_frozen_queue", **{"providers.latency_queue.refresh_every": 1,
                                                                      "providers.latency_queue.trigger_min_age": 0})
    queue = frozen.providers.providers["latency_queue"]
    logs = [frozen.train_step(b) for b, _ in zip(frozen._batches(), range(4), strict=False)]
    assert "sec/j_an" in logs[-1] and queue.refresh_log == [] and queue.refreshed_at == [1, 1, 1]


# -- SEC on WeatherKITTI --------------------------------------------------------------------------------------
KITTI_DRIVE = "2011_09_26/2011_09_26_drive_0001_sync"


def weatherkitti_fixture(tmp: Path, frames: int = 8) -> tuple[Path, Path]:
    """A constructed KITTI raw root in WeatherKITTI's layout: textured clear frames in image_02/data and
    pixel-aligned weather copies (darkened: raingan; washed out: fog/75m) beside them, plus an eigen_zhou split."""
    from PIL import Image

    root, splits = tmp / "kitti", tmp / "splits"
    base = root / KITTI_DRIVE / "image_02"
    rng = np.random.default_rng(0)
    for folder in ("data", "raingan/data", "fog/75m"):
        (base / folder).mkdir(parents=True)
    yy, xx = np.mgrid[0:96, 0:320]
    for i in range(frames):
        clear = np.stack([(xx * 3 + yy + 17 * i) % 256, (yy * 2 + 5 * i) % 256, (xx + yy * 3) % 256], -1)
        clear = np.clip(clear + rng.integers(0, 40, clear.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clear).save(base / "data" / f"{i:010d}.png")
        Image.fromarray((clear // 2).astype(np.uint8)).save(base / "raingan" / "data" / f"{i:010d}.png")
        Image.fromarray((clear // 3 + 160).astype(np.uint8)).save(base / "fog" / "75m" / f"{i:010d}.png")
    (splits / "eigen_zhou").mkdir(parents=True)
    (splits / "eigen_zhou" / "train_files.txt").write_text(
        "".join(f"{KITTI_DRIVE} {i} l\n" for i in range(1, frames - 1)))
    return root, splits


def _kitti_sec_config(root: Path, splits: Path, weatherkitti: bool) -> object:
    options = (f"data.options={{splits_dir: {splits}, png: true, weatherkitti: {str(weatherkitti).lower()}, "
               "weather_p: 0.5, weather_conditions: [raingan, fog_75m]}")
    return load_config("kitti_eigen_zhou+sec", [
        f"data.root={root}", options, "data.height=64", "data.width=96", "data.num_workers=0", "optim.batch_size=2",
        "optim.max_steps=4", "train.progress=false", "train.log_every=1000", "train.image_every=100000",
        "train.ckpt_every=100000", "providers.latency_queue.warmup_steps=1", "providers.latency_queue.refresh_every=2"])


def test_sec_trains_on_a_weatherkitti_fixture(tmp_path: Path) -> None:
    """kitti_eigen_zhou+sec with data.options.weatherkitti=true: the dataset fills the degraded view (degrade.mode
    stays none), SECL runs against the queue, and the queue records its negatives."""
    root, splits = weatherkitti_fixture(tmp_path)
    cfg = _kitti_sec_config(root, splits, weatherkitti=True)
    assert cfg.degrade.mode == "none"
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    logs, degraded = [], []
    for batch in trainer._batches():
        degraded.extend(bool(x) for x in batch["is_degraded"])
        logs.append(trainer.train_step(batch))
    assert trainer.step == 4 and trainer.skipped_steps == 0
    assert any(degraded) and not all(degraded)  # weather_p = 0.5: both kinds of samples
    with_negative = [lg for lg in logs if "sec/j_an" in lg]
    assert with_negative and all(math.isfinite(lg["loss/sec"]) and lg["sec/j_ap"] > 0 for lg in with_negative)
    queue = trainer.providers.providers["latency_queue"]
    assert len(queue.negative_ages) == len(with_negative)


def test_sec_on_kitti_without_weather_is_refused_at_the_first_step(tmp_path: Path) -> None:
    root, splits = weatherkitti_fixture(tmp_path, frames=4)
    trainer = Trainer(_kitti_sec_config(root, splits, weatherkitti=False), run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match="degraded view.*weatherkitti"):
        trainer.train_step(next(trainer._batches()))
