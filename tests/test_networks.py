"""Networks: torchvision-compatible ResNet, Monodepth2 depth decoder / pose net, weight loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from robustdepth.geometry import Pose
from robustdepth.networks import (
    DepthDecoder,
    DepthNet,
    DepthOutput,
    PoseDecoder,
    PoseNet,
    ResNet,
    ResnetEncoder,
    depth_to_disp,
    disp_to_depth,
    load_imagenet_weights,
    load_monodepth2_weights,
)

torch.manual_seed(0)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ ResNet layout

# Facts about torchvision's ResNets: parameter counts (with the fc head) and state_dict sizes
# (resnet18: 62 parameters + 60 BN buffers; resnet50: 161 + 159).
TORCHVISION_FACTS = {18: (11_689_512, 122), 34: (21_797_672, 218), 50: (25_557_032, 320)}


@pytest.mark.parametrize("num_layers", [18, 34, 50])
def test_resnet_matches_torchvision_counts(num_layers: int) -> None:
    model = ResNet(num_layers)
    params, entries = TORCHVISION_FACTS[num_layers]
    assert n_params(model) == params
    assert len(model.state_dict()) == entries


@pytest.mark.parametrize(
    ("num_layers", "key", "shape"),
    [
        (18, "conv1.weight", (64, 3, 7, 7)),
        (18, "layer1.0.conv1.weight", (64, 64, 3, 3)),
        (18, "layer2.0.downsample.0.weight", (128, 64, 1, 1)),
        (18, "layer2.0.downsample.1.running_var", (128,)),
        (18, "layer4.1.bn2.running_var", (512,)),
        (18, "fc.weight", (1000, 512)),
        (50, "layer1.0.conv3.weight", (256, 64, 1, 1)),
        (50, "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
        (50, "layer2.0.conv2.weight", (128, 128, 3, 3)),  # stride on the 3×3 conv (v1.5)
        (50, "layer3.5.bn3.running_mean", (1024,)),
        (50, "layer4.2.bn3.running_var", (2048,)),
        (50, "fc.weight", (1000, 2048)),
    ],
)
def test_resnet_key_shapes(num_layers: int, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(ResNet(num_layers).state_dict()[key].shape) == shape


def test_resnet18_has_no_downsample_in_layer1_and_multi_image_conv1() -> None:
    keys = ResNet(18).state_dict()
    assert not any(k.startswith("layer1.0.downsample") for k in keys)
    assert ResNet(18, num_input_images=2).conv1.weight.shape == (64, 6, 7, 7)
    with pytest.raises(ValueError, match="num_layers"):
        ResNet(101)


def test_resnet_stride_and_logits() -> None:
    model = ResNet(18).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.rand(1, 3, 64, 96))
        logits = model(torch.rand(1, 3, 64, 96))
    assert [f.shape[-1] for f in feats] == [48, 24, 12, 6, 3]
    assert logits.shape == (1, 1000)


# ---------------------------------------------------------------------------------------- ImageNet loading


@pytest.fixture(scope="module")
def torchvision_layout_file(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint in torchvision's key layout (our ResNet's own state_dict, nothing renamed)."""
    source = ResNet(18)
    with torch.no_grad():
        for buf_name, buf in source.named_buffers():
            if "running" in buf_name:
                buf.uniform_(0.5, 1.5)  # non-default buffers prove they are loaded too
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pth"
    torch.save(source.state_dict(), path)
    return source.state_dict(), path


def test_imagenet_weights_load_into_two_image_encoder(torchvision_layout_file) -> None:
    state, path = torchvision_layout_file
    encoder = ResnetEncoder(18, num_input_images=2, pretrained_path=str(path))
    loaded = encoder.encoder.state_dict()
    expected_conv1 = torch.cat([state["conv1.weight"]] * 2, dim=1) / 2
    torch.testing.assert_close(loaded["conv1.weight"], expected_conv1)
    for key in ("layer4.1.bn2.running_var", "layer2.0.downsample.0.weight", "fc.bias"):
        torch.testing.assert_close(loaded[key], state[key])
    # Two identical frames through the 6-channel conv1 give the ImageNet response to one frame.
    single = ResNet(18)
    load_imagenet_weights(single, path)
    image = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(
        encoder.encoder.conv1(torch.cat([image, image], 1)), single.conv1(image), rtol=1e-5, atol=1e-5
    )


def test_imagenet_weights_from_safetensors_without_fc_or_counters(torchvision_layout_file, tmp_path) -> None:
    state, _ = torchvision_layout_file
    trimmed = {k: v for k, v in state.items() if not k.startswith("fc.") and "num_batches" not in k}
    path = tmp_path / "resnet18_headless.safetensors"
    save_file(trimmed, str(path))
    model = ResNet(18)
    load_imagenet_weights(model, path)
    torch.testing.assert_close(model.state_dict()["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])


def test_imagenet_weights_errors_name_the_problem(torchvision_layout_file, tmp_path) -> None:
    state, _ = torchvision_layout_file
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_imagenet_weights(ResNet(18), missing)

    wrong_keys = tmp_path / "renamed.pth"
    torch.save({"backbone." + k: v for k, v in state.items()}, wrong_keys)
    with pytest.raises(ValueError, match=r"renamed\.pth.*missing keys.*'conv1\.weight'") as info:
        load_imagenet_weights(ResNet(18), wrong_keys)
    assert "unexpected keys" in str(info.value) and "backbone.conv1.weight" in str(info.value)

    wrong_depth = tmp_path / "r18_into_r50.pth"
    torch.save(state, wrong_depth)
    with pytest.raises(ValueError, match=r"r18_into_r50\.pth"):
        load_imagenet_weights(ResNet(50), wrong_depth)

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(ValueError, match="not a state dict"):
        load_imagenet_weights(ResNet(18), not_a_state_dict)

    pickled = tmp_path / "pickled.pth"
    torch.save({"model": ResNet(18)}, pickled)  # a pickled module: refused by weights_only=True
    with pytest.raises(ValueError, match="weights_only"):
        load_imagenet_weights(ResNet(18), pickled)


def test_shape_mismatch_is_reported(torchvision_layout_file, tmp_path) -> None:
    state, _ = torchvision_layout_file
    bad = dict(state)
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(bad, path)
    with pytest.raises(ValueError, match=r"shape mismatches.*layer1\.0\.conv1\.weight"):
        load_imagenet_weights(ResNet(18), path)


# ------------------------------------------------------------------------------------------------ encoder


def test_encoder_levels_at_64x192() -> None:
    encoder = ResnetEncoder(18)
    assert encoder.num_ch_enc == [64, 64, 128, 256, 512]
    feats = encoder(torch.rand(2, 3, 64, 192))
    assert [tuple(f.shape) for f in feats] == [
        (2, 64, 32, 96),
        (2, 64, 16, 48),
        (2, 128, 8, 24),
        (2, 256, 4, 12),
        (2, 512, 2, 6),
    ]
    assert next(iter(encoder.state_dict())) == "encoder.conv1.weight"  # Monodepth2's encoder.pth layout


def test_encoder_normalises_like_monodepth2() -> None:
    encoder = ResnetEncoder(18).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = encoder.encoder.forward_features((image - 0.45) / 0.225)
        got = encoder(image)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("height", "width"), [(96, 320), (192, 640)])
def test_encoder_other_resolutions(height: int, width: int) -> None:
    with torch.no_grad():
        feats = ResnetEncoder(18).eval()(torch.rand(1, 3, height, width))
    assert feats[-1].shape == (1, 512, height // 32, width // 32)


def test_resnet50_encoder_channels() -> None:
    encoder = ResnetEncoder(50)
    assert encoder.num_ch_enc == [64, 256, 512, 1024, 2048]
    with torch.no_grad():
        feats = encoder.eval()(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == encoder.num_ch_enc


# ------------------------------------------------------------------------------------------------ decoder


def test_depth_decoder_layout_matches_monodepth2() -> None:
    decoder = DepthDecoder([64, 64, 128, 256, 512])
    state = decoder.state_dict()
    # Monodepth2's order: upconv(4,0), upconv(4,1), …, upconv(0,1) = decoder.0 … decoder.9, dispconv(0..3).
    assert state["decoder.0.conv.conv.weight"].shape == (256, 512, 3, 3)
    assert state["decoder.1.conv.conv.weight"].shape == (256, 512, 3, 3)  # 256 up + 256 skip
    assert state["decoder.7.conv.conv.weight"].shape == (32, 96, 3, 3)  # 32 up + 64 skip
    assert state["decoder.9.conv.conv.weight"].shape == (16, 16, 3, 3)  # no skip at scale 0
    assert state["decoder.10.conv.weight"].shape == (1, 16, 3, 3)  # dispconv(0)
    assert state["decoder.13.conv.weight"].shape == (1, 128, 3, 3)  # dispconv(3)
    # 3,152,724 = Monodepth2's ResNet-18 depth decoder (sum of its 10 ConvBlocks and 4 dispconvs).
    assert n_params(decoder) == 3_152_724


def test_depth_decoder_outputs() -> None:
    encoder = ResnetEncoder(18)
    decoder = DepthDecoder(encoder.num_ch_enc)
    disps, feats = decoder(encoder(torch.rand(2, 3, 64, 192)))
    assert [tuple(d.shape) for d in disps] == [(2, 1, 64 // 2**k, 192 // 2**k) for k in range(4)]
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // 2**k, 192 // 2**k) for k, c in enumerate([16, 32, 64, 128])
    ]
    for d in disps:
        assert d.min() > 0 and d.max() < 1


def test_depth_decoder_subset_of_scales_and_errors() -> None:
    decoder = DepthDecoder([64, 64, 128, 256, 512], scales=(2, 0))
    disps, feats = decoder(ResnetEncoder(18)(torch.rand(1, 3, 64, 64)))
    assert [d.shape[-1] for d in disps] == [16, 64]
    assert [f.shape[1] for f in feats] == [64, 16]
    with pytest.raises(ValueError, match="scales"):
        DepthDecoder([64, 64, 128, 256, 512], scales=(0, 5))
    with pytest.raises(ValueError, match="5 encoder"):
        DepthDecoder([64, 64, 128, 256])


def test_depth_net_returns_depth_output() -> None:
    net = DepthNet(18)
    out = net(torch.rand(1, 3, 64, 192))
    assert isinstance(out, DepthOutput) and isinstance(out, tuple)
    assert len(out.disp) == len(out.features) == 4 and len(out.encoder_features) == 5
    assert out.disp[0].shape == (1, 1, 64, 192)
    # 14,842,236 = torchvision resnet18 (11,689,512) + decoder (3,152,724)
    assert n_params(net) == 14_842_236
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.rand(1, 3, 60, 192))


# ------------------------------------------------------------------------------------ disparity ↔ depth


def test_disp_to_depth_monodepth2_values() -> None:
    disp = torch.tensor([0.0, 0.5, 1.0])
    scaled, depth = disp_to_depth(disp, 0.1, 100.0)
    torch.testing.assert_close(scaled, torch.tensor([0.01, 0.01 + 9.99 * 0.5, 10.0]))
    torch.testing.assert_close(depth, torch.tensor([100.0, 1 / 5.005, 0.1]))


def test_depth_to_disp_round_trip_and_clamp() -> None:
    disp = torch.rand(2, 1, 8, 8)
    _, depth = disp_to_depth(disp, 0.1, 80.0)
    torch.testing.assert_close(depth_to_disp(depth, 0.1, 80.0), disp, rtol=1e-4, atol=1e-5)
    assert depth_to_disp(torch.tensor([0.01, 1000.0]), 0.1, 80.0).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="min_depth"):
        disp_to_depth(disp, 10.0, 1.0)


# ------------------------------------------------------------------------------------------------- pose


def test_pose_net_shapes_and_layout() -> None:
    net = PoseNet(18)
    assert net.encoder.encoder.conv1.weight.shape == (64, 6, 7, 7)
    assert list(net.decoder.state_dict()) == [f"net.{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    assert net.decoder.net[3].weight.shape == (12, 256, 1, 1)  # 6 values × 2 frames, as Monodepth2
    axisangle, translation = net(torch.rand(2, 3, 64, 192), torch.rand(2, 3, 64, 192))
    assert axisangle.shape == (2, 3) and translation.shape == (2, 3)


def test_pose_decoder_scales_output_by_001() -> None:
    decoder = PoseDecoder([64, 64, 128, 256, 512], num_input_features=1, num_frames_to_predict_for=2)
    with torch.no_grad():
        last = decoder.net[3]
        last.weight.zero_()
        last.bias.copy_(torch.arange(12, dtype=torch.float32))
    axisangle, translation = decoder([[torch.rand(3, 512, 2, 6)]])
    assert axisangle.shape == translation.shape == (3, 2, 1, 3)
    raw = torch.arange(12, dtype=torch.float32).view(2, 1, 6)
    torch.testing.assert_close(axisangle[0], 0.01 * raw[..., :3])
    torch.testing.assert_close(translation[2], 0.01 * raw[..., 3:])


def test_target_to_source_follows_monodepth2_ordering() -> None:
    net = PoseNet(18).eval()
    target, source = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = net.target_to_source(target, source, source_is_before=True)
        after = net.target_to_source(target, source, source_is_before=False)
        aa_st, t_st = net(source, target)
        aa_ts, t_ts = net(target, source)
    # Earlier source: the network sees [source, target] and its pose is inverted.
    torch.testing.assert_close(before.matrix, Pose.from_axis_angle(aa_st, t_st).inverse().matrix)
    torch.testing.assert_close(after.matrix, Pose.from_axis_angle(aa_ts, t_ts).matrix)
    assert not torch.allclose(before.matrix, after.matrix)


# -------------------------------------------------------------------------------- Monodepth2 release files


def test_load_monodepth2_release_layout(tmp_path) -> None:
    trained_depth, trained_pose = DepthNet(18), PoseNet(18)
    enc = dict(trained_depth.encoder.state_dict(), height=192, width=640, use_stereo=False)
    files = {
        "encoder.pth": enc,
        "depth.pth": trained_depth.decoder.state_dict(),
        "pose_encoder.pth": trained_pose.encoder.state_dict(),
        "pose.pth": trained_pose.decoder.state_dict(),
    }
    for name, state in files.items():
        torch.save(state, tmp_path / name)
    depth_net, pose_net = DepthNet(18).eval(), PoseNet(18).eval()
    info = load_monodepth2_weights(
        depth_net,
        tmp_path / "encoder.pth",
        tmp_path / "depth.pth",
        pose_net,
        tmp_path / "pose_encoder.pth",
        tmp_path / "pose.pth",
    )
    assert info == {"height": 192, "width": 640, "use_stereo": False}
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(depth_net(image).disp[0], trained_depth.eval()(image).disp[0])
        torch.testing.assert_close(pose_net(image, image)[1], trained_pose.eval()(image, image)[1])
    with pytest.raises(ValueError, match=r"depth\.pth"):  # decoder file given as encoder
        load_monodepth2_weights(DepthNet(18), tmp_path / "depth.pth", tmp_path / "depth.pth")


def test_decoder_convs_get_bf16_under_autocast_with_the_same_values() -> None:
    """Under bf16 autocast the decoder pads in the activation's dtype (autocast would run reflection padding in
    fp32 and cast back for every conv): each decoder conv receives bf16, and the outputs equal those of the fp32
    round trip bit for bit, because padding only copies values."""
    from robustdepth.networks import depth_decoder

    torch.manual_seed(0)
    net = DepthNet().eval()
    x = torch.rand(2, 3, 64, 96)
    seen: list[torch.dtype] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
             for m in net.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.autocast("cpu", torch.bfloat16):
        got = net(x).disp
    for h in hooks:
        h.remove()
    assert len(seen) > 10 and set(seen) == {torch.bfloat16}

    def round_trip(self: depth_decoder.Conv3x3, t: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(t))

    original = depth_decoder.Conv3x3.forward
    depth_decoder.Conv3x3.forward = round_trip
    try:
        with torch.autocast("cpu", torch.bfloat16):
            want = net(x).disp
    finally:
        depth_decoder.Conv3x3.forward = original
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("source_is_before", [True, False])
def test_relative_pose_builds_its_matrix_in_fp32_under_autocast(source_is_before: bool) -> None:
    """A pose network run under bf16 autocast returns bf16 (axisangle, translation); the rotation and the
    inversion (a matrix product autocast would run in bf16) are computed in fp32, exactly as outside autocast."""
    from robustdepth.networks import relative_pose

    gen = torch.Generator().manual_seed(5)
    axisangle = (torch.rand(3, 3, generator=gen) - 0.5).to(torch.bfloat16)
    translation = (torch.rand(3, 3, generator=gen) * 4 - 2).to(torch.bfloat16)
    frames = torch.rand(3, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = relative_pose(lambda a, b: (axisangle, translation), frames, frames, source_is_before)
    want = Pose.from_axis_angle(axisangle.float(), translation.float(), invert=source_is_before)
    assert got.matrix.dtype == torch.float32 and torch.equal(got.matrix, want.matrix)
