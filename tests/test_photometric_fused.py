"""The fused photometric path equals the per-call path it replaced, to float rounding, in value and gradient.

The references (robustdepth.bench.photometric_reference) are the previous implementations, kept verbatim in
spirit: five separate pools per SSIM call, one error call per (scale, source), one warp per (scale, source)
through ``ctx.reconstruct``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robustdepth.bench.photometric_reference import reference_error, reference_loss, reference_ssim
from robustdepth.configure import load_config
from robustdepth.losses.photometric import PhotometricLoss, by_source, reconstruct_all
from robustdepth.similarity import _box3, photometric_error, photometric_errors, ssim_dissimilarity
from robustdepth.training.context import StepContext, StepState
from robustdepth.training.trainer import Trainer
from tests.conftest import corridor_overrides


def _images(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = F.avg_pool2d(torch.rand(*shape, generator=g), 3, 1, 1)  # textured, non-constant, in [0, 1]
    return (0.7 * smooth + 0.3 * torch.rand(*shape, generator=g)).requires_grad_()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 9, 13), (3, 1, 5, 4), (1, 3, 66, 194)])
def test_box_filter_is_avg_pool_bit_for_bit(shape: tuple[int, ...], channels_last: bool) -> None:
    """The SSIM's 3×3 mean (shifted-view sums) equals F.avg_pool2d(x, 3, 1) exactly, value and gradient, so
    replacing the pool changed the speed of training and nothing else."""
    x = _images(4, *shape)
    if channels_last:
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    got, want = _box3(x), F.avg_pool2d(x, 3, 1)
    assert torch.equal(got, want)
    weights = torch.rand(want.shape, generator=torch.Generator().manual_seed(5))
    (g_got,) = torch.autograd.grad((got * weights).sum(), x)
    (g_want,) = torch.autograd.grad((want * weights).sum(), x)
    assert torch.equal(g_got, g_want)


def test_fused_ssim_equals_five_pool_reference_in_value_and_gradient() -> None:
    x, y = _images(0, 2, 3, 9, 13), _images(1, 2, 3, 9, 13)
    got, want = ssim_dissimilarity(x, y), reference_ssim(x, y)
    assert got.shape == want.shape and want.std() > 0.01
    assert torch.allclose(got, want, atol=1e-6)
    weights = torch.rand_like(want)
    gx, gy = torch.autograd.grad((got * weights).sum(), (x, y))
    rx, ry = torch.autograd.grad((want * weights).sum(), (x, y))
    assert torch.allclose(gx, rx, atol=1e-5) and torch.allclose(gy, ry, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.85, 0.0])
def test_batched_errors_equal_one_call_per_prediction(alpha: float) -> None:
    target = _images(2, 3, 3, 10, 14)
    preds = _images(3, 4 * 3, 3, 10, 14)  # K = 4 predictions of the 3-image target
    got = photometric_errors(preds, target, alpha)
    want = torch.cat([reference_error(p, target, alpha) for p in preds.split(3)])
    assert got.shape == (12, 1, 10, 14)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(photometric_error(preds[:3], target, alpha), want[:3], atol=1e-6)  # rosam's entry point
    weights = torch.rand_like(want)
    g_pred, g_target = torch.autograd.grad((got * weights).sum(), (preds, target))
    r_pred, r_target = torch.autograd.grad((want * weights).sum(), (preds, target))
    assert torch.allclose(g_pred, r_pred, atol=1e-5) and torch.allclose(g_target, r_target, atol=1e-5)
    with pytest.raises(ValueError, match="K copies"):
        photometric_errors(preds[:5], target, alpha)


def test_by_source_puts_sources_in_channels() -> None:
    errors = torch.arange(2 * 3 * 4 * 5 * 6, dtype=torch.float32).view(2 * 3 * 4, 1, 5, 6)  # G=2, S=3, B=4
    groups = by_source(errors, 3, 2)
    for g in range(2):
        for s in range(3):
            for b in range(4):
                assert torch.equal(groups[g][b, s], errors[(g * 3 + s) * 4 + b, 0])


def _context(corridor: Path, tmp_path: Path, seed: int, **extra: object) -> tuple[Trainer, StepContext]:
    cfg = load_config("monodepth2", corridor_overrides(corridor, **{"optim.max_steps": 1, **extra}))
    trainer = Trainer(cfg, run_dir=tmp_path / f"run{len(extra)}")
    batch = next(trainer._batches())
    state = StepState(0, 1, 0, trainer.steps_per_epoch)
    ctx = StepContext(trainer._to_device(batch), trainer.depth_net, trainer.pose_net, trainer.providers, state,
                      cfg, torch.Generator().manual_seed(seed), trainer.device)
    return trainer, ctx


def test_reconstruct_all_equals_one_warp_per_scale_and_source(corridor: Path, tmp_path: Path) -> None:
    trainer, ctx = _context(corridor, tmp_path, 0)
    depths = [ctx.depth_full("input", s).detach() for s in ctx.scales]
    got = reconstruct_all(ctx, ctx.source_ids, depths)
    want = torch.cat([ctx.reconstruct(f, d) for d in depths for f in ctx.source_ids])
    assert torch.allclose(got, want, atol=1e-5)
    trainer.close()


@pytest.mark.parametrize("extra", [
    {},  # Monodepth2: SSIM + L1, auto-masking, per-pixel minimum
    {"losses.photometric.automask": False, "losses.photometric.min_reprojection": False},
    {"losses.photometric.ssim_alpha": 0.0},
])
def test_fused_loss_term_equals_previous_path(corridor: Path, tmp_path: Path, extra: dict) -> None:
    trainer, ctx = _context(corridor, tmp_path, 7, **extra)
    term = trainer.losses.terms["photometric"]
    assert isinstance(term, PhotometricLoss)
    params = [p for p in trainer.models.parameters() if p.requires_grad]
    got, logs = term(ctx)
    ctx.generator.manual_seed(7)  # the reference draws the same automask noise
    want = reference_loss(ctx, term.cfg)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert 0 < logs["automask_kept"] <= 1
    g_got = torch.autograd.grad(got, params, retain_graph=True, allow_unused=True)
    g_want = torch.autograd.grad(want, params, allow_unused=True)
    flat = [(a, b) for a, b in zip(g_got, g_want, strict=True) if b is not None]
    assert len(flat) > 10 and all(a is not None for a, _ in flat)  # depth and pose nets both receive gradient
    got_vec = torch.cat([a.flatten() for a, _ in flat])
    want_vec = torch.cat([b.flatten() for _, b in flat])
    assert torch.allclose(got_vec, want_vec, rtol=1e-3, atol=1e-6 * float(want_vec.abs().max()))
    trainer.close()


def test_previous_step_paths_change_time_not_values(corridor: Path, tmp_path: Path) -> None:
    """The before/after timing of benchmarks/profile_step.py is fair: in a bf16 + channels_last step the previous
    paths (avg_pool2d means, fp32 pad round trips, per-call weight casts) give the very same losses, and leaving
    the block restores every current path (the gradient norm's is pinned in test_speed_paths.py, the casts'
    gradients in test_a_bf16_step_casts_each_trained_weight_once)."""
    import robustdepth.similarity as similarity
    from robustdepth.bench.photometric_reference import previous_step_paths
    from robustdepth.networks import depth_decoder
    from robustdepth.training import trainer as trainer_module

    trainer, ctx = _context(corridor, tmp_path, 3, **{"train.precision": "bf16", "train.channels_last": True})
    trainer.models.train()

    def losses() -> torch.Tensor:
        fresh = StepContext(ctx.batch, trainer.depth_net, trainer.pose_net, trainer.providers, ctx.state,
                            trainer.cfg, torch.Generator().manual_seed(3), trainer.device)
        return trainer.losses(fresh)[0]

    def paths() -> tuple[object, ...]:
        return (similarity._box3, depth_decoder.Conv3x3.forward, trainer_module.gradient_norm,
                StepContext.weight_casts)

    def spanned_losses() -> torch.Tensor:
        with ctx.weight_casts():
            return losses()

    current = paths()
    got = spanned_losses()
    with previous_step_paths():
        assert all(now is not then for now, then in zip(paths(), current, strict=True))
        want = spanned_losses()
    assert paths() == current
    assert torch.equal(got, want) and got.item() > 0
    trainer.close()


def test_a_bf16_step_casts_each_trained_weight_once(corridor: Path, tmp_path: Path) -> None:
    """StepContext.weight_casts spans the losses of a bf16 step (Trainer.train_step enters it): the pose network,
    called once per source frame, casts its fp32 weights to bf16 once per step instead of once per call (two
    sources here), with the same loss and the gradient of both calls still reaching every pose weight — equal
    to the per-call casts' gradient up to bf16 rounding of where the two calls' gradients add up."""
    from torch.utils._python_dispatch import TorchDispatchMode

    trainer, ctx = _context(corridor, tmp_path, 3, **{"train.precision": "bf16", "train.channels_last": True})
    first_conv = trainer.models.pose.encoder.encoder.conv1.weight
    assert len(ctx.source_ids) == 2

    class CastsOfFirstConv(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func is torch.ops.aten._to_copy.default and args[0] is first_conv:
                CastsOfFirstConv.count += 1
            return func(*args, **(kwargs or {}))

    def step(span: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        fresh = StepContext(ctx.batch, trainer.depth_net, trainer.pose_net, trainer.providers, ctx.state,
                            trainer.cfg, torch.Generator().manual_seed(3), trainer.device)
        trainer.models.zero_grad(set_to_none=True)
        CastsOfFirstConv.count = 0
        with CastsOfFirstConv(), (fresh.weight_casts() if span else contextlib.nullcontext()):
            total = trainer.losses(fresh)[0]
        total.backward()
        grads = [p.grad.clone() for p in trainer.models.pose.parameters() if p.grad is not None]
        return total.detach(), grads, CastsOfFirstConv.count

    trainer.models.train()
    once, per_call = step(True), step(False)
    assert (once[2], per_call[2]) == (1, 2) and len(once[1]) == len(per_call[1]) > 40
    assert torch.equal(once[0], per_call[0])
    got, want = torch.cat([g.flatten() for g in once[1]]), torch.cat([g.flatten() for g in per_call[1]])
    assert float(want.norm()) > 0 and float((got - want).norm() / want.norm()) < 1e-2
    CastsOfFirstConv.count = 0
    with CastsOfFirstConv():
        trainer.train_step(ctx.batch)  # the trainer's own step spans its losses the same way
    assert CastsOfFirstConv.count == 1
    trainer.close()
