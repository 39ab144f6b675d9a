"""SEC-Depth: soft bins, JS divergence, margins/ramps, the latency queue's refresh rule and trigger, exact resume
with the queue, no gradients into the queue, and a 2-process data-parallel run with the queue."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from robustdepth.config import load_config
from robustdepth.losses.sec import (
    exp_ramp,
    histogram_js,
    js_divergence,
    linear_ramp,
    margin_alpha1,
    pixel_js,
    soft_bins,
)
from robustdepth.networks import DepthNet
from robustdepth.priors.latency_queue import LatencyQueue, SpreadStat, spread_statistic
from robustdepth.training.checkpoint import load_checkpoint
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
    batch = {("color", 0): torch.zeros(1, 3, 64, 96)}
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


def test_spread_statistic_and_trigger_on_constructed_cases() -> None:
    a = torch.zeros(1, 1, 4, 4)
    p = torch.arange(16.0).view(1, 1, 4, 4) / 16
    stat = spread_statistic(a, p, 2 * p)
    assert stat.ap == pytest.approx(float(p.var())) and stat.an == pytest.approx(4 * float(p.var()))
    queue, _ = _queue(size=3, warmup_steps=0, refresh_every=100)
    queue.after_step(_ctx(0))  # fills the queue at step 1
    queue.last_spread = SpreadStat(an=0.3, ap=0.2)  # negatives still far: no refresh
    queue.after_step(_ctx(1))
    assert queue.counts == {"periodic": 0, "forced": 0} and queue.refreshed_at == [1, 1, 1]
    queue.last_spread = SpreadStat(an=0.1, ap=0.2)  # the negative explains the anchor better: forced refresh
    queue.after_step(_ctx(2))
    assert queue.counts == {"periodic": 0, "forced": 1} and queue.refreshed_at == [3, 1, 1]
    queue.after_step(_ctx(3))  # no statistic this step (loss inactive): nothing fires
    assert queue.counts["forced"] == 1
    queue.after_step(_ctx(100))  # 101 − 1 ≥ refresh_every: periodic refresh of the oldest (member 1)
    assert queue.counts == {"periodic": 1, "forced": 1} and queue.refreshed_at == [3, 101, 1]


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
