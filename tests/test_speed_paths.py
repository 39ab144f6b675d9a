"""The fast paths compute the same things as the reference paths: cached frames are byte-identical,
bf16/channels_last training stays close to fp32, the compiled loss kernel equals the eager one, and
batched / channels_last / bf16 inference agrees with plain fp32. (No timing here: benchmarks/speed.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import FrameCache, color_key
from robustdepth.inference import DepthModel, predict_to_folder, resolve_precision
from robustdepth.networks import DepthNet
from robustdepth.similarity import compiled_photometric_errors, photometric_errors
from robustdepth.training.trainer import Trainer
from tests.conftest import corridor_overrides


def _cfg(root: Path, **extra: object):
    return load_config("monodepth2", corridor_overrides(root, **extra))


def test_frame_cache_gives_byte_identical_samples(corridor: Path) -> None:
    cfg = _cfg(corridor, **{"augment.color_jitter_p": 1.0})
    plain = build_dataset(cfg, "train", train=True)
    cached = build_dataset(cfg, "train", train=True)
    cached.frame_cache = FrameCache(64 * 2**20)
    for encoded in (0, 3, len(cached) + 3):  # index 3 again in epoch 1: served from the cache
        a, b = plain[encoded], cached[encoded]
        assert a.keys() == b.keys()
        for key, value in a.items():
            if torch.is_tensor(value):
                assert torch.equal(value, b[key]), f"{key} differs with the frame cache"
    assert len(cached.frame_cache) == 6 and cached.frame_cache.used_bytes == 6 * 64 * 192 * 3
    tiny = FrameCache(100)  # smaller than one frame: nothing is kept, samples still load
    cached.frame_cache = tiny
    assert torch.equal(cached[1][color_key(0)], plain[1][color_key(0)]) and len(tiny) == 0
    with pytest.raises(ValueError, match="budget"):
        FrameCache(-1)


def test_bf16_channels_last_training_step_matches_fp32(corridor: Path, tmp_path: Path) -> None:
    fp32 = Trainer(_cfg(corridor, **{"optim.max_steps": 2}), run_dir=tmp_path / "a")
    fast = Trainer(_cfg(corridor, **{"optim.max_steps": 2, "train.precision": "bf16",
                                     "train.channels_last": True}), run_dir=tmp_path / "b")
    assert fast.models.depth.encoder.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    batch = next(iter(fp32._batches()))
    init = torch.cat([p.detach().flatten().clone() for p in fp32.models.depth.parameters()])
    ref, got = fp32.train_step(batch), fast.train_step(batch)
    ctx = fast.last_ctx
    assert all(d.dtype == torch.float32 for d in ctx.depth("input").disp), "network outputs must reach losses in fp32"
    assert ctx.pose(-1).matrix.dtype == torch.float32
    for key in ("loss/photometric", "loss/total"):
        assert got[key] == pytest.approx(ref[key], rel=0.02), key
    # one Adam step moves each weight by ~lr·sign(grad): bf16 gradients must point the same way as fp32's
    assert all(p.dtype == torch.float32 for p in fast.models.parameters())  # fp32 master weights
    step_ref = torch.cat([p.detach().flatten() for p in fp32.models.depth.parameters()]) - init
    step_fast = torch.cat([p.detach().flatten() for p in fast.models.depth.parameters()]) - init
    moved = step_ref.abs() > 1e-6
    agree = (step_ref.sign() == step_fast.sign())[moved].float().mean()
    assert agree > 0.9, f"only {agree:.1%} of the depth weights moved the same way in bf16"


def test_fused_adam_steps_like_the_default_path(corridor: Path, tmp_path: Path) -> None:
    """``optim.fused`` builds torch's fused Adam and takes the same training step (rounding aside)."""
    plain = Trainer(_cfg(corridor, **{"optim.max_steps": 2}), run_dir=tmp_path / "a")
    fused = Trainer(_cfg(corridor, **{"optim.max_steps": 2, "optim.fused": True}), run_dir=tmp_path / "b")
    assert fused.optimizer.defaults["fused"] is True and not plain.optimizer.defaults["fused"]
    assert fused.optimizer.defaults["lr"] == plain.optimizer.defaults["lr"]
    batch = next(iter(plain._batches()))
    init = torch.cat([p.detach().flatten().clone() for p in plain.models.parameters()])
    plain.train_step(batch), fused.train_step(batch)
    step_plain = torch.cat([p.detach().flatten() for p in plain.models.parameters()]) - init
    step_fused = torch.cat([p.detach().flatten() for p in fused.models.parameters()]) - init
    assert step_plain.abs().max() > 1e-5  # the step moved the weights ...
    assert torch.allclose(step_fused, step_plain, atol=1e-6)  # ... and the fused kernel moved them the same way


def test_compiled_batched_photometric_errors_equal_eager() -> None:
    """``train.compile_loss`` compiles the loss term's batched path (several predictions of one target)."""
    gen = torch.Generator().manual_seed(1)
    preds, target = torch.rand(4, 3, 32, 48, generator=gen), torch.rand(2, 3, 32, 48, generator=gen)
    compiled = compiled_photometric_errors()
    assert compiled is compiled_photometric_errors()
    assert torch.allclose(compiled(preds, target, 0.85), photometric_errors(preds, target, 0.85), atol=1e-6)


@pytest.fixture(scope="module")
def net() -> DepthNet:
    torch.manual_seed(0)
    return DepthNet().eval().requires_grad_(False)


def _model(net: DepthNet, **kw: object) -> DepthModel:
    return DepthModel(net, 64, 192, 0.1, 100.0, torch.device("cpu"), **kw)


def test_fast_inference_agrees_with_fp32(net: DepthNet) -> None:
    x = torch.rand(2, 3, 64, 192, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = net(x).disp[0]
    fast = _model(net, precision="bf16", channels_last=True)
    plain = _model(net, precision="fp32", channels_last=False)
    cl = _model(net, precision="fp32", channels_last=True)
    assert torch.allclose(plain.predict_disp(x), ref, atol=1e-6)
    assert torch.allclose(cl.predict_disp(x), ref, atol=1e-5)
    bf16 = fast.predict_disp(x)
    assert bf16.dtype == torch.float32 and bf16.is_contiguous()
    assert (bf16 - ref).abs().max() < 2e-2
    # depth (what users see) within a few percent in bf16
    assert ((fast.predict_depth(x) / plain.predict_depth(x)) - 1).abs().max() < 0.05


def test_precision_names_are_checked(net: DepthNet) -> None:
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    assert _model(net, precision="auto").precision in ("fp32", "bf16")
    with pytest.raises(ValueError, match="fp16"):
        _model(net, precision="fp16")
    with pytest.raises(ValueError, match="tensorrt"):
        DepthModel.from_checkpoint("unused.pt", backend="tensorrt")


def test_batched_prediction_equals_one_by_one(net: DepthNet, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((64, 192), (70, 200), (64, 192))]
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"f{i}.png")
    model = _model(net)
    written = predict_to_folder(model, [folder], tmp_path / "out", progress=False, batch_size=2, compile=False)
    assert [p.name for p in written] == ["f0_depth.npy", "f1_depth.npy", "f2_depth.npy"]
    for path, img in zip(written, images, strict=True):
        depth = np.load(path)
        assert depth.shape == img.shape[:2]
        np.testing.assert_allclose(depth, model.infer(img), rtol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        predict_to_folder(model, [folder], tmp_path / "out", batch_size=0)


def test_bf16_weights_path_matches_autocast_and_leaves_the_callers_net_fp32(net: DepthNet) -> None:
    x = torch.rand(1, 3, 64, 192, generator=torch.Generator().manual_seed(2))
    stored = _model(net, precision="bf16")  # weights cast to bf16 once (the default bf16 path)
    per_call = _model(net, precision="bf16", bf16_weights=False)  # autocast over fp32 weights
    assert next(net.parameters()).dtype == torch.float32
    assert next(stored.net.parameters()).dtype == torch.bfloat16
    assert next(per_call.net.parameters()).dtype == torch.float32
    # both round every weight to bf16 identically; only the order of a few casts differs
    assert (stored.predict_disp(x) - per_call.predict_disp(x)).abs().max() < 1e-2


def test_step_gflop_counts_a_convs_forward_and_both_gradients() -> None:
    """The training rows' roofline bounds rest on this count: a conv training step whose input needs a gradient
    costs its forward (2·MAC) + the input gradient + the weight gradient = 3× the forward."""
    from robustdepth.bench.timing import step_gflop

    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    x = torch.rand(2, 8, 12, 20, requires_grad=True)
    forward = 2 * 2 * 16 * 8 * 9 * 12 * 20 / 1e9  # 2·MAC over batch × out ch × in ch × k² × H × W

    assert step_gflop(lambda: conv(x).sum().backward()) == pytest.approx(3 * forward)
    with torch.no_grad():
        assert step_gflop(lambda: conv(x)) == pytest.approx(forward)


def test_training_table_reads_each_bound_from_its_own_throughput() -> None:
    """`bound bf16` uses the forward-only conv rate (the issue's definition), `train-pass bound` the measured
    training-pass rate: 10 GFLOP in 0.5 s at 100 / 40 GFLOP/s is 5.0× / 2.0× its bound."""
    from robustdepth.bench.speed_report import to_markdown

    conv = {"fp32_gflops": 50.0, "fp32_gflops_median": 45.0, "bf16_channels_last_gflops": 100.0,
            "bf16_channels_last_gflops_median": 90.0, "train_fp32_gflops": 20.0, "train_fp32_gflops_median": 18.0,
            "train_bf16_channels_last_gflops": 40.0, "train_bf16_channels_last_gflops_median": 35.0}
    step = {"step_s": 0.5, "images_per_s": 8.0, "speedup_vs_eager_fp32": 1.5}
    res = {"roofline": {"conv": conv, "gflops": {"64x192": 1.6}},
           "training": {"64x192": {"eager_fp32": {**step, "step_s": 0.75}, "fast": step, "gflop": 10.0,
                                   "fast_config": {"train.precision": "bf16"}}}}
    text = to_markdown(res)
    row = next(line for line in text.splitlines() if line.startswith("| 64x192 | precision=bf16"))
    assert row.endswith("| 10.0 | 5.0× | 2.0× | – | – |")
    assert "bf16 autocast + channels_last 40 GFLOP/s" in text
    # the networks-alone floor: 0.2 s for its own 8 GFLOP at 100 GFLOP/s is 2.5× its bound; the step is 2.5× it
    res["training"]["64x192"].update(fast_networks={"step_s": 0.2}, networks_gflop=8.0)
    row = next(line for line in to_markdown(res).splitlines() if line.startswith("| 64x192 | precision=bf16"))
    assert row.endswith("| 10.0 | 5.0× | 2.0× | 0.20 (2.5×) | 2.50× |")


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # the image inputs need no gradient
def test_networks_pass_trains_both_networks_and_leaves_no_gradient(corridor: Path, tmp_path: Path) -> None:
    """benchmarks/speed.py's networks-alone floor runs the step's depth pass and one pose pass per source frame with
    their backward (its FLOPs: every conv's forward and both gradients, ≥ 95 % of the whole step's) and leaves the
    trainer as it found it: no gradient, weights unchanged."""
    import importlib.util

    from robustdepth.bench.timing import step_gflop

    spec = importlib.util.spec_from_file_location("speed_bench", Path(__file__).parents[1] / "benchmarks/speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    trainer = Trainer(_cfg(corridor, **{"optim.batch_size": 2, "optim.max_steps": 1}), run_dir=tmp_path / "run")
    batch = next(trainer._batches())
    before = [p.detach().clone() for p in trainer.models.parameters()]
    seen: list[str] = []
    hooks = [m.register_full_backward_hook(lambda *_, name=name: seen.append(name))
             for name, m in (("depth", trainer.models.depth.encoder.encoder.conv1),
                             ("pose", trainer.models.pose.encoder.encoder.conv1))]
    nets = step_gflop(speed.networks_pass(trainer, batch))
    for h in hooks:
        h.remove()
    assert seen.count("depth") == 1 and seen.count("pose") == len(trainer.cfg.data.frame_ids) - 1
    assert all(p.grad is None for p in trainer.models.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.models.parameters(), strict=True))
    whole = step_gflop(lambda: trainer.train_step(batch))
    assert 0.95 * whole < nets < whole
    trainer.close()


def test_gradient_norm_without_clipping_only_measures() -> None:
    """Unclipped, the step's gradient norm is the L2 norm over every gradient (an independent float64 sum here,
    and torch's own clip_grad_norm_ value) and leaves each gradient bit for bit; with grad_clip it still clips
    to that norm and returns the norm before clipping."""
    from robustdepth.training.trainer import gradient_norm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    for i, p in enumerate(model.parameters()):
        p.grad = None if i == 3 else torch.randn_like(p) * (i + 1)  # one parameter without a gradient
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    want = torch.cat([g.double().flatten() for g in grads if g is not None]).norm()
    norm = gradient_norm(model, 0.0)
    assert norm.item() == pytest.approx(want.item(), rel=1e-6)
    assert all((g is None and p.grad is None) or torch.equal(p.grad, g)
               for p, g in zip(model.parameters(), grads, strict=True))
    assert torch.equal(norm, torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
    bound = 0.25 * want.item()
    assert gradient_norm(model, bound).item() == pytest.approx(want.item(), rel=1e-6)
    clipped = torch.cat([p.grad.double().flatten() for p in model.parameters() if p.grad is not None]).norm()
    assert clipped.item() == pytest.approx(bound, rel=1e-5)


def test_fast_overlay_keys_are_the_recipe_overlay() -> None:
    """The speed benchmarks time exactly RECIPE+fast: its keys as overrides give the overlay's config."""
    from omegaconf import OmegaConf

    from robustdepth.bench.timing import fast_overlay

    keys = fast_overlay()
    assert keys["train.precision"] == "bf16" and len(keys) >= 3
    over = load_config("monodepth2", [f"{k}={v}" for k, v in keys.items()])
    assert OmegaConf.to_container(over) == OmegaConf.to_container(load_config("monodepth2+fast"))
