"""Monodepth2's pose network ("separate_resnet"): a 6-channel ResNet encoder + the pose decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from robustdepth.geometry import Pose
from robustdepth.networks.resnet import ResnetEncoder

__all__ = ["PoseDecoder", "PoseNet", "relative_pose"]

# Monodepth2 scales the raw decoder output by 0.01 so that the initial poses are near identity.
POSE_OUTPUT_SCALE = 0.01


class PoseDecoder(nn.Module):
    """Monodepth2's pose decoder: squeeze 1×1 → pose_0 3×3 → pose_1 3×3 → pose_2 1×1 → spatial mean.

    Modules live in ``self.net`` (ModuleList: squeeze, pose_0, pose_1, pose_2) so original
    ``pose.pth`` keys (``net.0.weight`` …) load.
    """

    def __init__(
        self,
        num_ch_enc: Sequence[int],
        num_input_features: int,
        num_frames_to_predict_for: int = 2,
        stride: int = 1,
    ):
        super().__init__()
        if num_input_features < 1 or num_frames_to_predict_for < 1:
            raise ValueError(
                "num_input_features and num_frames_to_predict_for must be >= 1, got "
                f"{num_input_features} and {num_frames_to_predict_for}"
            )
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.num_input_features = num_input_features
        self.num_frames_to_predict_for = num_frames_to_predict_for
        squeeze = nn.Conv2d(self.num_ch_enc[-1], 256, 1)
        pose_0 = nn.Conv2d(num_input_features * 256, 256, 3, stride, 1)
        pose_1 = nn.Conv2d(256, 256, 3, stride, 1)
        pose_2 = nn.Conv2d(256, 6 * num_frames_to_predict_for, 1)
        self.net = nn.ModuleList([squeeze, pose_0, pose_1, pose_2])
        self.relu = nn.ReLU()

    def forward(self, input_features: Sequence[Sequence[Tensor]]) -> tuple[Tensor, Tensor]:
        """``input_features``: one encoder feature list per input; only each list's last level is used.

        Returns ``(axisangle, translation)``, each B×F×1×3 (F = num_frames_to_predict_for), ×0.01.
        """
        if len(input_features) != self.num_input_features:
            raise ValueError(
                f"PoseDecoder built for {self.num_input_features} feature lists, got {len(input_features)}"
            )
        squeeze, *pose_convs = self.net
        out = torch.cat([self.relu(squeeze(f[-1])) for f in input_features], dim=1)
        for i, conv in enumerate(pose_convs):
            out = conv(out)
            if i != len(pose_convs) - 1:
                out = self.relu(out)
        out = out.mean(3).mean(2)
        out = POSE_OUTPUT_SCALE * out.view(-1, self.num_frames_to_predict_for, 1, 6)
        return out[..., :3], out[..., 3:]


class PoseNet(nn.Module):
    """Relative camera motion between two frames, Monodepth2's "separate_resnet" pose network.

    ``forward(a, b)`` encodes the 6-channel stack [a, b] and returns the first predicted frame's
    ``(axisangle, translation)``, each B×3 (Monodepth2's ``axisangle[:, 0]`` without its singleton
    axis). Use :meth:`target_to_source` for the pose a warp needs; it applies Monodepth2's ordering.
    """

    def __init__(self, num_layers: int = 18, pretrained_path: str | None = None):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, num_input_images=2, pretrained_path=pretrained_path)
        self.decoder = PoseDecoder(self.encoder.num_ch_enc, num_input_features=1, num_frames_to_predict_for=2)

    def forward(self, image_a: Tensor, image_b: Tensor) -> tuple[Tensor, Tensor]:
        """``image_a``, ``image_b``: B×3×H×W in [0, 1]. Returns (axisangle B×3, translation B×3)."""
        if image_a.shape != image_b.shape or image_a.ndim != 4 or image_a.shape[1] != 3:
            raise ValueError(
                f"PoseNet expects two B×3×H×W images of equal shape, got {tuple(image_a.shape)} "
                f"and {tuple(image_b.shape)}"
            )
        features = self.encoder(torch.cat([image_a, image_b], dim=1))
        axisangle, translation = self.decoder([features])
        return axisangle[:, 0, 0], translation[:, 0, 0]

    def target_to_source(self, target: Tensor, source: Tensor, source_is_before: bool) -> Pose:
        """The pose T_{t→s} mapping points in the TARGET camera frame into the SOURCE camera frame
        (see :func:`relative_pose`)."""
        return relative_pose(self, target, source, source_is_before)


def relative_pose(
    net: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    target: Tensor,
    source: Tensor,
    source_is_before: bool,
) -> Pose:
    """T_{t→s} from a pose network ``net(a, b) -> (axisangle, translation)`` with Monodepth2's ordering.

    The network always sees the earlier frame first, so for an earlier source it runs on
    [source, target] and inverts the result; for a later source on [target, source]. The returned
    matrix is the one Monodepth2 passes to ``Project3D``. ``net`` may be a ``PoseNet`` or its DDP
    wrapper (calling the wrapper's forward keeps DDP's gradient hooks in place).

    The network may run under autocast (bf16 training); the rotation and the inversion always run in fp32
    (autocast would otherwise do the inversion's matrix product in bf16), so warps get fp32 poses.
    """
    if source_is_before:
        axisangle, translation = net(source, target)
    else:
        axisangle, translation = net(target, source)
    with torch.autocast(axisangle.device.type, enabled=False):
        return Pose.from_axis_angle(axisangle.float(), translation.float(), invert=source_is_before)
