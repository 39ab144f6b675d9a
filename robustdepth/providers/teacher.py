"""Frozen teachers: the day-clear teacher of md4all-DD / ACDepth and Syn2Real's Φ_day.

A frozen model is a depth (and, when the checkpoint has one, pose) network loaded from any
robustdepth checkpoint. It runs in eval mode with ``requires_grad=False`` and is never in the
optimiser (the trainer only optimises ``trainer.models``). Losses read it through
``ctx.provide("teacher")`` / ``ctx.provide("day_model")`` → :class:`TeacherPrediction`.

The teacher sees the clean, un-jittered target frame (``ctx.image("clean")``). Flips are consistent
by construction: the data pipeline mirrors the clean frame together with the student's input, so the
teacher's prediction is pixel-aligned with the student's without md4all's flip-predict-flip-back.

``providers.teacher`` also holds the keys of the two-stage pipeline (``robustdepth pipeline``): which
recipe trains the teacher when no checkpoint is given, for how many steps, and whether the student
starts from the teacher's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

from robustdepth.checkpoint import load_checkpoint
from robustdepth.config import ConfigError, fixed_config_from_dict
from robustdepth.geometry import Pose
from robustdepth.networks import DepthNet, DepthOutput, PoseNet, build_depth_net, disp_to_depth
from robustdepth.providers.base import Provider, ProviderConfig, in_step_numerics, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

SEES = ("clean", "degraded")


@dataclass
class TeacherConfig(ProviderConfig):
    checkpoint: Any = None  # robustdepth checkpoint (file or run dir); set by `robustdepth pipeline` when empty
    # What the frozen model sees: clean = the un-jittered clear target (md4all/ACDepth); degraded = the
    # un-jittered degraded copy (Syn2Real RA: Φ_syn and Φ_day label the same "real" adverse frame).
    sees: str = "clean"
    # -- pipeline keys (robustdepth pipeline), used only when `checkpoint` is empty --
    recipe: str = "monodepth2"  # recipe that trains the teacher (may itself need a teacher: stages chain)
    steps: int = 0  # > 0 sets the teacher's optim.max_steps (0 = the teacher recipe's own schedule)
    overrides: list[str] = field(default_factory=list)  # extra KEY=VALUE for the teacher stage
    share_data: bool = True  # the teacher stage trains on the student's data section (same world/resolution)
    init_student: bool = True  # the student starts from the teacher's weights (model.init_checkpoint), as the papers


@dataclass
class DayModelConfig(ProviderConfig):
    checkpoint: Any = None  # empty: filled by the pipeline from `stage`, else falls back to the teacher's
    sees: str = "clean"
    # Which pipeline stage is Φ_day when `checkpoint` is empty: root = the first (day-clear, self-supervised)
    # model of the stage chain; teacher = the same checkpoint as providers.teacher.
    stage: str = "root"


def load_frozen(path: str | Path) -> tuple[DepthNet, PoseNet | None, Any]:
    """(depth net, pose net or None, the checkpoint's fixed config sections — ``model``, ``data``, …) of a
    checkpoint, in eval mode with gradients off."""
    ckpt = load_checkpoint(path)
    cfg = fixed_config_from_dict(ckpt["config"])
    depth = build_depth_net(cfg.model)
    depth.load_state_dict(ckpt["models"]["depth"])
    pose = None
    if "pose" in ckpt["models"]:
        pose = PoseNet(cfg.model.pose_num_layers)
        pose.load_state_dict(ckpt["models"]["pose"])
    for net in (depth, pose):
        if net is not None:
            net.eval().requires_grad_(False)
    return depth, pose, cfg


class TeacherPrediction:
    """A frozen model's outputs for one batch: depth pass now, upsampled scales and poses on request."""

    def __init__(self, ctx: StepContext, output: DepthOutput, image: Tensor, pose_net: nn.Module | None,
                 min_depth: float, max_depth: float, source: str) -> None:
        self.ctx = ctx
        self.output = output
        self.image = image
        self._pose_net = pose_net
        self.min_depth, self.max_depth = min_depth, max_depth
        self.source = source
        self._scaled: dict[int, Tensor] = {}
        self._poses: dict[int, Pose] = {}

    @property
    def encoder_features(self) -> list[Tensor]:
        """The teacher's 5 encoder levels (64@½, 64@¼, 128@⅛, 256@1/16, 512@1/32 for ResNet-18)."""
        return self.output.encoder_features

    def scaled_disp(self, k: int) -> Tensor:
        """Scaled inverse depth d_k (B×1×H×W), scale k bilinearly upsampled to the input resolution."""
        if k not in self._scaled:
            disp = self.output.disp[k]
            if disp.shape[-2:] != self.image.shape[-2:]:
                disp = F.interpolate(disp, size=self.image.shape[-2:], mode="bilinear", align_corners=False)
            self._scaled[k] = disp_to_depth(disp, self.min_depth, self.max_depth)[0]
        return self._scaled[k]

    @property
    def has_pose(self) -> bool:
        """Whether the frozen checkpoint has a pose network (``pose`` works)."""
        return self._pose_net is not None

    def depth(self, k: int) -> Tensor:
        """Depth 1/d_k at the input resolution."""
        return 1.0 / self.scaled_disp(k)

    def pose(self, frame_id: int) -> Pose:
        """T_{target→source} from the frozen pose net on the clean (un-jittered) frames."""
        if self._pose_net is None:
            raise RuntimeError(f"frozen model {self.source} has no pose network (it was trained without a "
                               "pose loss); pose distillation needs a checkpoint with models.pose")
        if frame_id not in self._poses:
            self._poses[frame_id] = self.ctx.run_pose(self._pose_net, frame_id, aug=False, grad=False)
        return self._poses[frame_id]


class FrozenModelProvider(Provider):
    """Common body of the teacher and day-model providers."""

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        if cfg.sees not in SEES:
            raise ConfigError(f"providers.{cls.name}.sees={cfg.sees!r}: use one of {SEES}")

    def __init__(self, cfg: Any, root_cfg: Any) -> None:
        super().__init__(cfg, root_cfg)
        self.checkpoint = self.resolve_checkpoint(cfg, root_cfg)
        depth, pose, frozen_cfg = load_frozen(self.checkpoint)
        self.depth_net = in_step_numerics(depth, root_cfg.train)
        self.pose_net = None if pose is None else in_step_numerics(pose, root_cfg.train)
        self.min_depth, self.max_depth = float(frozen_cfg.model.min_depth), float(frozen_cfg.model.max_depth)
        # A frozen model sees the input normalisation it was trained with: md4all's daytime normalisation
        # (the "clean_input" / "degraded_input" slots) only when its own run had data.options.daytime_norm.
        self.daytime_norm = bool(dict(frozen_cfg.data.options).get("daytime_norm", False))
        self.eval()

    def resolve_checkpoint(self, cfg: Any, root_cfg: Any) -> str:
        if not cfg.checkpoint:
            raise ConfigError(f"providers.{self.name}.checkpoint is empty: give a trained checkpoint "
                              f"(providers.{self.name}.checkpoint=RUN_DIR) or run the two-stage "
                              "'robustdepth pipeline RECIPE', which trains the teacher first")
        return str(cfg.checkpoint)

    def train(self, mode: bool = True) -> FrozenModelProvider:
        """Frozen models stay in eval mode (BatchNorm statistics must not drift with the student's batches)."""
        return super().train(False)

    def _image(self, ctx: StepContext) -> Tensor:
        # sees=degraded follows the S-step gate (degrade.every_n_steps): on a step whose student input is the
        # clean frame, the frozen model labels that same (un-jittered) clean frame, never an unseen copy.
        degraded = self.cfg.sees == "degraded" and ctx.degraded_active
        try:
            return ctx.frozen_image(degraded, self.daytime_norm)
        except KeyError as err:
            raise KeyError(f"providers.{self.name}.sees=degraded: {err.args[0]}") from None

    def forward(self, ctx: StepContext) -> TeacherPrediction:
        image = self._image(ctx)
        # Equal checkpoints seeing the same image share one pass (Syn2Real's Φ_day may be the teacher).
        seen = "degraded" if self.cfg.sees == "degraded" and ctx.degraded_active else "clean"
        output = ctx.memo(("frozen_depth", self.checkpoint, seen),
                          lambda: ctx.run_depth(self.depth_net, image, grad=False))
        return TeacherPrediction(ctx, output, image, self.pose_net, self.min_depth, self.max_depth,
                                 f"{self.name} ({self.checkpoint})")


@register_provider
class Teacher(FrozenModelProvider):
    """The frozen day-clear teacher (md4all's baseline checkpoint role)."""

    name = "teacher"
    Config = TeacherConfig


@register_provider
class DayModel(FrozenModelProvider):
    """Syn2Real's Φ_day: a second frozen model for the consistency weight (may equal the teacher)."""

    name = "day_model"
    Config = DayModelConfig

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        super().check_config(cfg, root_cfg)
        if cfg.stage not in ("root", "teacher"):
            raise ConfigError(f"providers.day_model.stage={cfg.stage!r}: use root or teacher")

    def resolve_checkpoint(self, cfg: Any, root_cfg: Any) -> str:
        if cfg.checkpoint:
            return str(cfg.checkpoint)
        if cfg.stage == "teacher" and root_cfg.providers.teacher.checkpoint:
            return str(root_cfg.providers.teacher.checkpoint)
        raise ConfigError("providers.day_model.checkpoint is empty: give Φ_day's checkpoint, or run "
                          "'robustdepth pipeline RECIPE', which resolves providers.day_model.stage")


__all__ = ["DayModel", "DayModelConfig", "Teacher", "TeacherConfig", "TeacherPrediction", "load_frozen"]
