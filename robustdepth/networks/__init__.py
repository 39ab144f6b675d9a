"""Networks: torchvision-compatible ResNet encoder, Monodepth2 depth decoder and pose network."""

from robustdepth.networks.depth_decoder import DepthDecoder
from robustdepth.networks.depth_net import (
    DepthNet,
    DepthOutput,
    ScaleZeroDisparity,
    build_depth_net,
    depth_to_disp,
    disp_to_depth,
    load_monodepth2_weights,
)
from robustdepth.networks.pose import PoseDecoder, PoseNet, relative_pose
from robustdepth.networks.resnet import ResNet, ResnetEncoder, load_imagenet_weights, read_state_dict

__all__ = [
    "DepthDecoder",
    "DepthNet",
    "DepthOutput",
    "PoseDecoder",
    "PoseNet",
    "ResNet",
    "ResnetEncoder",
    "ScaleZeroDisparity",
    "build_depth_net",
    "depth_to_disp",
    "disp_to_depth",
    "load_imagenet_weights",
    "load_monodepth2_weights",
    "read_state_dict",
    "relative_pose",
]
