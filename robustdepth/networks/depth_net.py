"""The depth network (ResNet encoder + Monodepth2 decoder), disparity ↔ depth, and MD2 weight loading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from robustdepth.networks.depth_decoder import DepthDecoder
from robustdepth.networks.pose import PoseNet
from robustdepth.networks.resnet import ResnetEncoder, load_state_dict_checked, read_state_dict

__all__ = ["DepthNet", "DepthOutput", "ScaleZeroDisparity", "build_depth_net", "depth_to_disp", "disp_to_depth",
           "load_monodepth2_weights"]

DEFAULT_MIN_DEPTH = 0.1
DEFAULT_MAX_DEPTH = 100.0


class DepthOutput(NamedTuple):
    """What :class:`DepthNet` returns (a NamedTuple so DDP, torch.compile and ONNX export accept it).

    ``disp[n]``/``features[n]`` belong to scale ``scales[n]`` (sigmoid disparity B×1×H/2^s×W/2^s and
    the decoder feature map at that scale); ``encoder_features`` are the 5 encoder levels.
    """

    disp: list[Tensor]
    features: list[Tensor]
    encoder_features: list[Tensor]


class DepthNet(nn.Module):
    """Monodepth2's depth network: image B×3×H×W in [0, 1] (H, W multiples of 32) → :class:`DepthOutput`."""

    def __init__(
        self, num_layers: int = 18, scales: Sequence[int] = (0, 1, 2, 3), pretrained_path: str | None = None
    ):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, num_input_images=1, pretrained_path=pretrained_path)
        self.decoder = DepthDecoder(self.encoder.num_ch_enc, scales)
        self.scales = list(self.decoder.scales)

    def forward(self, image: Tensor) -> DepthOutput:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"DepthNet expects a B×3×H×W image, got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"DepthNet needs H and W divisible by 32 (5 halvings), got {height}×{width}")
        encoder_features = self.encoder(image)
        disp, features = self.decoder(encoder_features)
        return DepthOutput(disp=disp, features=features, encoder_features=encoder_features)


class ScaleZeroDisparity(nn.Module):
    """The scale-0 disparity of a :class:`DepthNet` (one output: what inference, ``torch.compile`` and ONNX
    export need)."""

    def __init__(self, net: DepthNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image).disp[0]


def build_depth_net(model: Any, pretrained: bool = False) -> DepthNet:
    """The depth network a config's ``model`` section describes (encoder depth, output scales); ``pretrained``
    loads ``model.pretrained_path``'s ImageNet encoder weights (training starts), otherwise the weights are left
    for a checkpoint to fill (inference, frozen teachers)."""
    return DepthNet(model.num_layers, scales=list(model.scales),
                    pretrained_path=model.pretrained_path if pretrained else None)


def _disp_range(min_depth: float, max_depth: float) -> tuple[float, float]:
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
    return 1.0 / max_depth, 1.0 / min_depth


def disp_to_depth(
    disp: Tensor, min_depth: float = DEFAULT_MIN_DEPTH, max_depth: float = DEFAULT_MAX_DEPTH
) -> tuple[Tensor, Tensor]:
    """Monodepth2's conversion of the sigmoid output to (scaled disparity, depth).

    scaled_disp = 1/max_depth + (1/min_depth − 1/max_depth)·disp, depth = 1/scaled_disp, so
    disp 0 → max_depth and disp 1 → min_depth.
    """
    min_disp, max_disp = _disp_range(min_depth, max_depth)
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def depth_to_disp(
    depth: Tensor, min_depth: float = DEFAULT_MIN_DEPTH, max_depth: float = DEFAULT_MAX_DEPTH
) -> Tensor:
    """Inverse of :func:`disp_to_depth`: depth → sigmoid-space disparity, clamped to [0, 1]."""
    min_disp, max_disp = _disp_range(min_depth, max_depth)
    return ((1.0 / depth - min_disp) / (max_disp - min_disp)).clamp(0.0, 1.0)


def _split_info(state: dict) -> tuple[dict[str, Tensor], dict]:
    """Separate tensors from the plain values Monodepth2 stores next to them (height, width, use_stereo)."""
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    info = {k: v for k, v in state.items() if not isinstance(v, Tensor)}
    return tensors, info


def load_monodepth2_weights(
    depth_net: DepthNet,
    encoder_path: str | Path,
    decoder_path: str | Path,
    pose_net: PoseNet | None = None,
    pose_encoder_path: str | Path | None = None,
    pose_decoder_path: str | Path | None = None,
) -> dict:
    """Load original Monodepth2 release files (``encoder.pth``, ``depth.pth``, ``pose_encoder.pth``,
    ``pose.pth``) into our networks, strictly, with ``weights_only=True``.

    Returns the non-tensor entries of ``encoder.pth`` (``height``, ``width``, ``use_stereo``: the
    training resolution the model expects).
    """
    encoder_state, info = _split_info(read_state_dict(encoder_path, "Monodepth2 encoder"))
    load_state_dict_checked(depth_net.encoder, encoder_state, encoder_path)
    decoder_state, _ = _split_info(read_state_dict(decoder_path, "Monodepth2 depth decoder"))
    load_state_dict_checked(depth_net.decoder, decoder_state, decoder_path)
    pose_paths = (pose_encoder_path, pose_decoder_path)
    if pose_net is None:
        if any(p is not None for p in pose_paths):
            raise ValueError("pose weight paths were given but pose_net is None")
        return info
    if any(p is None for p in pose_paths):
        raise ValueError("pose_net needs both pose_encoder_path and pose_decoder_path")
    pose_encoder_state, _ = _split_info(read_state_dict(pose_encoder_path, "Monodepth2 pose encoder"))
    load_state_dict_checked(pose_net.encoder, pose_encoder_state, pose_encoder_path)
    pose_decoder_state, _ = _split_info(read_state_dict(pose_decoder_path, "Monodepth2 pose decoder"))
    load_state_dict_checked(pose_net.decoder, pose_decoder_state, pose_decoder_path)
    return info
