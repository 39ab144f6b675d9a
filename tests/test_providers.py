"""Providers (teacher, day model, relative-depth prior), the day histogram command, and the pipeline."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from robustdepth.checkpoint import save_checkpoint
from robustdepth.config import ConfigError, to_dict
from robustdepth.configure import load_config
from robustdepth.data.base import color_key
from robustdepth.networks import DepthNet
from robustdepth.providers.depth_prior import DepthPrior, dav2_input_size, nearest_multiple, oracle_disparity
from robustdepth.providers.histogram_cli import add_subparser
from robustdepth.providers.teacher import DayModel, Teacher
from robustdepth.training.day_histogram import compute_day_histogram
from robustdepth.training.pipeline import run_pipeline, student_config
from robustdepth.training.trainer import train
from tests.conftest import corridor_overrides
from tests.test_distill import FixedProviders, make_ctx, small_cfg

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def depth_only_checkpoint(tmp_path_factory: pytest.TempPathFactory, corridor: Path) -> Path:
    """A robustdepth checkpoint with a random depth net and no pose net (trained on nothing)."""
    cfg = load_config("monodepth2", corridor_overrides(corridor))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    return save_checkpoint(path, {"config": to_dict(cfg), "models": {"depth": DepthNet(18).state_dict()},
                                  "step": 0, "total_steps": 0})


def test_teacher_is_frozen_and_predicts_every_scale(depth_only_checkpoint: Path) -> None:
    cfg = small_cfg("providers.teacher.enabled=true", f"providers.teacher.checkpoint={depth_only_checkpoint}")
    teacher = Teacher(cfg.providers.teacher, cfg)
    teacher.train()  # the trainer may put modules in train mode: frozen models must stay in eval
    assert not teacher.training and not teacher.depth_net.training
    assert not any(p.requires_grad for p in teacher.parameters())
    ctx = make_ctx(torch.nn.Identity(), FixedProviders(), batch_size=2, cfg=cfg)
    ctx.batch[color_key(0)] = torch.rand(2, 3, 64, 96)
    pred = teacher(ctx)
    assert pred.scaled_disp(1).shape == (2, 1, 64, 96)
    assert torch.allclose(pred.depth(0), 1 / pred.scaled_disp(0))
    assert len(pred.encoder_features) == 5 and not pred.output.disp[0].requires_grad
    with pytest.raises(RuntimeError, match="no pose network"):
        pred.pose(-1)
    # Φ_day on the same checkpoint and image shares the teacher's pass
    cfg2 = small_cfg("providers.day_model.enabled=true", "providers.day_model.stage=teacher",
                     "providers.teacher.enabled=true", f"providers.teacher.checkpoint={depth_only_checkpoint}")
    day = DayModel(cfg2.providers.day_model, cfg2)
    assert day(ctx).output is pred.output


def test_teacher_in_the_fast_numerics_keeps_bf16_conv_weights_and_the_same_outputs(
        depth_only_checkpoint: Path) -> None:
    """Under train.precision=bf16 + channels_last the frozen teacher stores its conv weights in bf16 (channels_last)
    once, BatchNorm in fp32: its outputs in a step are bit for bit those of the fp32-stored teacher under autocast."""
    teacher_keys = ("providers.teacher.enabled=true", f"providers.teacher.checkpoint={depth_only_checkpoint}")
    fast_cfg = small_cfg(*teacher_keys, "train.precision=bf16", "train.channels_last=true")
    plain_cfg = small_cfg(*teacher_keys)
    fast, stored_fp32 = Teacher(fast_cfg.providers.teacher, fast_cfg), Teacher(plain_cfg.providers.teacher, plain_cfg)
    convs = [m for m in fast.depth_net.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in fast.depth_net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) > 20 and norms
    assert all(c.weight.dtype == torch.bfloat16 and c.weight.is_contiguous(memory_format=torch.channels_last)
               for c in convs)
    assert all(n.weight.dtype == n.running_var.dtype == torch.float32 for n in norms)
    assert all(p.dtype == torch.float32 for p in stored_fp32.parameters())
    outputs = []
    for teacher in (fast, stored_fp32):
        ctx = make_ctx(torch.nn.Identity(), FixedProviders(), batch_size=2, cfg=fast_cfg)  # bf16 passes, both
        ctx.batch[color_key(0)] = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
        output = teacher(ctx).output
        outputs.append([t for group in output for t in group])
    assert len(outputs[0]) >= 7 and all(t.dtype == torch.float32 for t in outputs[0])
    assert all(torch.equal(a, b) for a, b in zip(*outputs, strict=True))


def test_fast_teacher_pose_runs_in_the_step_numerics(tmp_path: Path, corridor: Path) -> None:
    """The frozen pose net of a bf16 + channels_last run keeps bf16 conv weights too and runs under the step's
    autocast (StepContext.run_pose), giving bit for bit the fp32-stored pose net's poses under autocast, within
    bf16 rounding of the fp32 pass, as fp32 matrices."""
    from robustdepth.networks import PoseNet

    cfg = load_config("monodepth2", corridor_overrides(corridor))
    torch.manual_seed(0)
    models = {"depth": DepthNet(18).state_dict(), "pose": PoseNet(18).state_dict()}
    ckpt = save_checkpoint(tmp_path / "last.pt", {"config": to_dict(cfg), "models": models, "step": 0,
                                                  "total_steps": 0})
    keys = ("providers.teacher.enabled=true", f"providers.teacher.checkpoint={ckpt}")
    fast_cfg, plain_cfg = small_cfg(*keys, "train.precision=bf16", "train.channels_last=true"), small_cfg(*keys)
    frames = {color_key(f): torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(10 + f))
              for f in (-1, 0, 1)}
    fast = Teacher(fast_cfg.providers.teacher, fast_cfg)
    assert fast.pose_net is not None
    assert {m.weight.dtype for m in fast.pose_net.modules() if isinstance(m, torch.nn.Conv2d)} == {torch.bfloat16}
    poses = {}
    for name, teacher, step_cfg in (("fast", fast, fast_cfg),
                                    ("stored_fp32", Teacher(plain_cfg.providers.teacher, plain_cfg), fast_cfg),
                                    ("fp32", Teacher(plain_cfg.providers.teacher, plain_cfg), plain_cfg)):
        ctx = make_ctx(torch.nn.Identity(), FixedProviders(), batch_size=2, cfg=step_cfg, extra=frames)
        poses[name] = torch.stack([teacher(ctx).pose(f).matrix for f in (-1, 1)])
    assert poses["fast"].dtype == torch.float32
    assert torch.equal(poses["fast"], poses["stored_fp32"])
    assert not torch.equal(poses["fast"], poses["fp32"])  # the bf16 pass is really taken ...
    assert torch.allclose(poses["fast"], poses["fp32"], atol=2e-2)  # ... and rounds like bf16 does


def test_teacher_without_checkpoint_says_how_to_get_one() -> None:
    cfg = small_cfg("providers.teacher.enabled=true")
    with pytest.raises(ConfigError, match="robustdepth pipeline"):
        Teacher(cfg.providers.teacher, cfg)


def _tiny_depth_anything(folder: Path) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8)
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    return folder


def test_depth_anything_prior_loads_locally_and_runs(tmp_path: Path) -> None:
    folder = _tiny_depth_anything(tmp_path / "dav2")
    cfg = small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=depth_anything",
                    f"providers.depth_prior.path={folder}")
    prior = DepthPrior(cfg.providers.depth_prior, cfg)
    assert not any(p.requires_grad for p in prior.parameters())
    ctx = make_ctx(torch.nn.Identity(), FixedProviders(), batch_size=2, cfg=cfg)
    ctx.batch[color_key(0)] = torch.rand(2, 3, 64, 192)
    out = prior(ctx)
    assert out.disparity.shape == (2, 1, 64, 192) and out.valid.shape == out.disparity.shape
    assert torch.isfinite(out.disparity).all()
    assert (nearest_multiple(320, 14), nearest_multiple(576, 14)) == (322, 574)  # ACDepth's 322×574


def test_missing_prior_path_gives_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    cfg = small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=depth_anything",
                    f"providers.depth_prior.path={missing}")
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        DepthPrior(cfg.providers.depth_prior, cfg)
    cfg = small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=depth_anything")
    with pytest.raises(ConfigError, match="providers.depth_prior.path"):
        DepthPrior(cfg.providers.depth_prior, cfg)
    with pytest.raises(ConfigError, match="ORACLE"):  # a static check: refused when the config is built
        small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=true_depth")


def test_day_histogram_command(depth_only_checkpoint: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_subparser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["histogram", str(depth_only_checkpoint), "--out", str(tmp_path / "h.json"),
                              "--bins", "33", "--max-frames", "3"])
    assert args.func(args) == 0
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["bins"] == 33 and data["frames"] == 3 and len(data["probabilities"]) == 33
    assert sum(data["probabilities"]) == pytest.approx(1.0, abs=1e-6)
    direct = compute_day_histogram(depth_only_checkpoint, tmp_path / "h2.json", bins=33, max_frames=3)
    assert json.loads(direct.read_text())["probabilities"] == data["probabilities"]


def test_pipeline_trains_resumes_and_reuses_both_stages(corridor: Path, tmp_path: Path) -> None:
    overrides = corridor_overrides(corridor, **{
        "optim.max_steps": 2, "providers.teacher.steps": 2,
        "losses.feature_consistency.start_fraction": 0.0,  # every ACDepth term active from step 0
        "degrade.rules": "[{condition: night, p: 0.5}, {condition: fog, p: 0.5}]",
    })
    cfg = load_config("acdepth", overrides)
    assert cfg.degrade.mode == "online"
    run = tmp_path / "pipe"
    first = run_pipeline(cfg, run)
    assert [s["action"] for s in first.stages] == ["trained", "trained"]
    teacher = run / "teacher" / "checkpoints" / "last.pt"
    assert first.root_checkpoint == teacher
    # an interrupted student continues (--resume semantics), the finished teacher is reused
    student_cfg = student_config(cfg, teacher, teacher, run / "student")
    assert student_cfg.model.init_checkpoint == str(teacher)
    for path in (run / "student").rglob("*.pt"):
        path.unlink()

    train(student_cfg, run / "student", stop_at=1)
    second = run_pipeline(cfg, run)
    assert [s["action"] for s in second.stages] == ["reused", "resumed"]
    third = run_pipeline(cfg, run)
    assert [s["action"] for s in third.stages] == ["reused", "reused"]
    # a stage folder holding another experiment is refused, not mixed
    with pytest.raises(ConfigError, match="another configuration"):
        run_pipeline(load_config("acdepth", [*overrides, "losses.ogd_rank.theta=0.3"]), run)


def test_teacher_prior_is_the_teachers_relative_disparity_larger_when_closer() -> None:
    """DepthPrior(source=teacher) = teacher scaled DISPARITY / median: larger where the teacher's depth is smaller."""
    cfg = small_cfg("providers.depth_prior.enabled=true")
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(2, 1, 8, 16, generator=g) * 0.8 + 0.1
    teacher = teacher_prediction_from(sigma, cfg)
    prior = DepthPrior(cfg.providers.depth_prior, cfg)(make_ctx(torch.nn.Identity(), FixedProviders(
        {"teacher": teacher}), batch_size=2, cfg=cfg))
    lo, hi = cfg.model.min_depth, cfg.model.max_depth
    disp = 1 / hi + (1 / lo - 1 / hi) * sigma
    ratio = prior.disparity / disp
    assert torch.allclose(ratio, ratio.flatten(1)[:, :1].view(2, 1, 1, 1).expand_as(ratio), rtol=1e-5)  # ∝ disparity
    assert torch.allclose(prior.disparity.flatten(1).median(dim=1).values, torch.ones(2), rtol=1e-5)
    depth = 1 / disp
    near, far = depth.flatten().argmin(), depth.flatten().argmax()
    assert prior.disparity.flatten()[near] > prior.disparity.flatten()[far]


def teacher_prediction_from(sigma: torch.Tensor, cfg: Any) -> Any:
    from robustdepth.networks import DepthOutput
    from robustdepth.providers.teacher import TeacherPrediction

    def make(ctx: Any) -> TeacherPrediction:
        out = DepthOutput(disp=[sigma, sigma[..., ::2, ::2]], features=[], encoder_features=[])
        return TeacherPrediction(ctx, out, ctx.image("clean"), None, cfg.model.min_depth, cfg.model.max_depth, "t")
    return make


def test_oracle_prior_orders_like_gt_but_is_not_metric_nor_full_resolution() -> None:
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 16, 32, generator=g) * 40 + 2
    gt[0, 0, :3] = 0.0  # sky
    exact = oracle_disparity(gt, (16, 32), gamma=0.5, downsample=1, noise=0.0, shift=0.1)
    valid = gt > 0
    # monotone: closer GT → larger prior, for every pair of valid pixels of an image
    for i in range(2):
        d, s = gt[i][valid[i]], exact[i][valid[i]]
        order = torch.argsort(d)
        assert bool((s[order][1:] <= s[order][:-1] + 1e-6).all())
    assert bool((exact[~valid] == 0.1).all())  # sky: the shift alone, the farthest value
    # not metric: ratios of the prior are the ratios of 1/D raised to γ (θ-labels of near-equal depths differ)
    unshifted = oracle_disparity(gt, (16, 32), gamma=0.5, downsample=1, noise=0.0, shift=0.0)
    log_prior = unshifted[1][valid[1]].log()
    log_disp = -gt[1][valid[1]].log()
    assert torch.allclose(log_prior - log_prior[0], 0.5 * (log_disp - log_disp[0]), atol=1e-4)
    # reduced resolution: a one-pixel spike is blurred away at downsample 4
    spike = torch.full((1, 1, 16, 32), 20.0)
    spike[0, 0, 8, 16] = 2.0
    low = oracle_disparity(spike, (16, 32), downsample=4, shift=0.0)
    high = oracle_disparity(spike, (16, 32), downsample=1, shift=0.0)
    assert float(low[0, 0, 8, 16] / low[0, 0, 0, 0]) < 0.8 * float(high[0, 0, 8, 16] / high[0, 0, 0, 0])
    # optional noise: changes values, reproducibly from the generator
    noisy = [oracle_disparity(gt, (16, 32), noise=0.2, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.allclose(noisy[0], oracle_disparity(gt, (16, 32)))


def test_oracle_provider_reads_gt_from_the_batch_and_is_labelled_oracle() -> None:
    cfg = small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=oracle",
                    "data.load_depth_gt=true", "providers.depth_prior.oracle_downsample=1")
    prior = DepthPrior(cfg.providers.depth_prior, cfg)
    gt = torch.linspace(5, 50, 8 * 16).view(1, 1, 8, 16)
    ctx = make_ctx(torch.nn.Identity(), FixedProviders(), cfg=cfg, extra={"depth_gt": gt})
    out = prior(ctx)
    assert "oracle" in out.source and out.disparity.shape == (1, 1, 8, 16)
    assert out.disparity.flatten()[0] > out.disparity.flatten()[-1]  # nearest pixel first
    with pytest.raises(ConfigError, match="ORACLE"):
        DepthPrior(cfg.providers.depth_prior, small_cfg("providers.depth_prior.source=oracle"))


def test_depth_anything_sees_the_raw_frame_at_322x574(tmp_path: Path) -> None:
    folder = _tiny_depth_anything(tmp_path / "dav2")
    cfg = small_cfg("providers.depth_prior.enabled=true", "providers.depth_prior.source=depth_anything",
                    f"providers.depth_prior.path={folder}", "providers.depth_prior.normalise=none")
    prior = DepthPrior(cfg.providers.depth_prior, cfg)
    seen: list[torch.Tensor] = []
    prior.model.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(kwargs["pixel_values"]),
                                          with_kwargs=True)
    ctx = make_ctx(torch.nn.Identity(), FixedProviders(), cfg=cfg)
    raw = torch.rand(1, 3, 64, 192)
    ctx.batch[color_key(0)] = raw
    ctx.batch["clean_input"] = raw * 0 - 5  # a daytime-normalised network input must not reach DAv2
    prior(ctx)
    assert tuple(seen[0].shape[-2:]) == (322, 574)
    assert float(seen[0].min()) >= -0.01  # the raw frame in [0, 1], resized
    cfg = small_cfg("providers.depth_prior.input_size=[]", "providers.depth_prior.enabled=true")
    assert dav2_input_size(cfg.providers.depth_prior, 320, 576) == (322, 574)
    assert dav2_input_size(cfg.providers.depth_prior, 64, 192) == (70, 196)


def test_frozen_teacher_sees_the_normalisation_it_was_trained_with(tmp_path: Path, corridor: Path) -> None:
    """Trained with daytime normalisation: the teacher sees the batch's "clean_input"; else the raw frame."""
    shown: dict[bool, torch.Tensor] = {}
    for daytime in (False, True):
        overrides = corridor_overrides(corridor)
        cfg_t = load_config("monodepth2", overrides)
        stored = to_dict(cfg_t)
        stored["data"]["options"] = {"daytime_norm": True} if daytime else {}
        path = save_checkpoint(tmp_path / f"t{int(daytime)}" / "last.pt", {
            "config": stored, "models": {"depth": DepthNet(18).state_dict()}, "step": 0, "total_steps": 0})
        cfg = small_cfg("providers.teacher.enabled=true", f"providers.teacher.checkpoint={path}")
        teacher = Teacher(cfg.providers.teacher, cfg)
        ctx = make_ctx(torch.nn.Identity(), FixedProviders(), cfg=cfg)
        ctx.batch[color_key(0)] = torch.rand(1, 3, 64, 96)
        ctx.batch["clean_input"] = ctx.batch[color_key(0)] * 0.5 + 0.1
        shown[daytime] = teacher(ctx).image
        assert torch.equal(shown[daytime], ctx.batch["clean_input"] if daytime else ctx.batch[color_key(0)])
        assert torch.equal(ctx.image("clean"), ctx.batch["clean_input"])  # what L_c's clean student pass sees
