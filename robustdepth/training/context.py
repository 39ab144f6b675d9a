"""One training step's view of the world: the batch, the networks, and lazily computed passes.

Loss terms ask for what they need (``ctx.depth("degraded")``, ``ctx.pose(-1)``,
``ctx.provide("teacher")``); each pass runs once per step, on first request, and is shared. So a
recipe that enables several terms pays for each network pass once, and a recipe that needs no
pose never runs the pose network — without the trainer knowing which method is configured.

Views (which image a depth pass sees):

* ``clean``      — the un-jittered target frame (what teachers and priors see); a data hook that normalises
  network inputs (md4all's daytime normalisation) puts the normalised copy in the batch's ``"clean_input"``
  slot, which this view then uses, so every network pass sees the same normalisation (the raw frame stays
  in ``"color:0"`` for losses and for priors with their own normalisation);
* ``clean_aug``  — the jittered target frame (Monodepth2's network input);
* ``degraded``   — the jittered pixel-aligned degraded copy (needs the degradation supply);
* ``input``      — the student's training input: ``degraded`` for samples that have one this step,
  else ``clean_aug``.

Batch keys are strings (:mod:`robustdepth.data.base`): per-frame slots are built with
:func:`~robustdepth.data.base.color_key` / :func:`~robustdepth.data.base.translation_key` (``"color:0"``,
``"color_aug:-1"``, ``"translation_norm:1"``), the rest are plain names (``"K"``, ``"degraded_aug"``, …).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustdepth.data.base import color_key
from robustdepth.geometry import Camera, Pose, warp
from robustdepth.networks import DepthOutput, disp_to_depth
from robustdepth.networks.pose import relative_pose


@dataclass
class StepState:
    """Where training is: global step (before this step's update), totals, epoch."""

    step: int
    total_steps: int
    epoch: int
    steps_per_epoch: int

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]."""
        return self.step / max(1, self.total_steps)

    @property
    def epoch_float(self) -> float:
        return self.step / max(1, self.steps_per_epoch)


class TrainModels(nn.Module):
    """The trained networks: a depth network and, when a loss needs it, a pose network."""

    def __init__(self, depth: nn.Module, pose: nn.Module | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.pose = pose


VIEWS = ("clean", "clean_aug", "degraded", "input")


class StepContext:
    """Batch + networks + memoised passes for one step (see module docstring)."""

    def __init__(self, batch: dict[str, Any], depth_net: Callable[..., DepthOutput],
                 pose_net: Callable[..., Any] | None, providers: Any, state: StepState, cfg: Any,
                 generator: torch.Generator, device: torch.device, degraded_active: bool = True) -> None:
        self.batch = batch
        self.depth_net = depth_net
        self.pose_net = pose_net
        self.providers = providers
        self.state = state
        self.cfg = cfg
        self.generator = generator
        self.device = device
        self.frame_ids: list[int] = list(cfg.data.frame_ids)
        self.source_ids: list[int] = self.frame_ids[1:]
        self.scales: list[int] = list(cfg.model.scales)
        self.min_depth = float(cfg.model.min_depth)
        self.max_depth = float(cfg.model.max_depth)
        self.degraded_active = degraded_active and bool(batch.get("is_degraded", torch.zeros(1)).any())
        self._memo: dict[Any, Any] = {}

    # -- memoisation -------------------------------------------------------------------------
    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per step under ``key``."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # -- images ------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.batch[color_key(0)].shape[0])

    def resolve_view(self, view: str) -> str:
        """Aliases collapse so equal inputs share one pass (``input`` is ``clean_aug`` without degradation)."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; views: {VIEWS}")
        if view == "input" and not self.degraded_active:
            return "clean_aug"
        if view == "degraded" and "degraded_aug" not in self.batch:
            raise KeyError("view 'degraded' needs a degraded copy in the batch: enable the degradation supply "
                           "(providers/data degrade settings) in the recipe")
        return view

    def image(self, view: str) -> torch.Tensor:
        """The B×3×H×W network input of a view."""
        view = self.resolve_view(view)
        if view == "clean":
            return self.batch.get("clean_input", self.batch[color_key(0)])
        if view == "clean_aug":
            return self.batch[color_key(0, aug=True)]
        if view == "degraded":
            return self.batch["degraded_aug"]
        mask = self.batch["is_degraded"].to(self.device).view(-1, 1, 1, 1)
        return torch.where(mask, self.batch["degraded_aug"], self.batch[color_key(0, aug=True)])

    def frozen_image(self, degraded: bool, daytime_norm: bool = False) -> torch.Tensor:
        """The un-jittered frame a frozen model (teacher, Φ_day) sees: the clean target or its degraded copy,
        in md4all's daytime normalisation when that model was trained with it (``data.options.daytime_norm``)."""
        if not degraded:
            return self.image("clean") if daytime_norm else self.color(0)
        if "degraded" not in self.batch:
            raise KeyError("a frozen model that sees the degraded frame needs the degradation supply (degrade.mode)")
        return self.batch.get("degraded_input", self.batch["degraded"]) if daytime_norm else self.batch["degraded"]

    def color(self, frame_id: int, scale: int = 0, aug: bool = False) -> torch.Tensor:
        """Frame ``frame_id`` (un-jittered unless ``aug``) at pyramid ``scale`` (area-downsampled once)."""
        key = color_key(frame_id, aug)
        if scale == 0:
            return self.batch[key]

        def down() -> torch.Tensor:
            full = self.batch[key]
            size = (full.shape[-2] // 2**scale, full.shape[-1] // 2**scale)
            return F.interpolate(full, size=size, mode="area")
        return self.memo((key, scale), down)

    # -- geometry ----------------------------------------------------------------------------
    def camera(self, scale: int = 0) -> Camera:
        return self.memo(("camera", scale), lambda: Camera(self.batch["K"]).at_scale(scale))

    def pose(self, frame_id: int) -> Pose:
        """T_{t→s}: target-camera points into the camera of source ``frame_id`` (pose net on jittered frames)."""
        if self.pose_net is None:
            raise RuntimeError("a loss asked for poses but the recipe built no pose network")

        return self.memo(("pose", frame_id), lambda: self.run_pose(self.pose_net, frame_id, aug=True, grad=True))

    def run_pose(self, net: Callable[..., Any], frame_id: int, aug: bool, grad: bool) -> Pose:
        """T_{t→s} from pose network ``net`` on the target and source ``frame_id`` (jittered frames when ``aug``)
        with the configured precision and memory format, as :meth:`run_depth` for depth; the pose itself is
        fp32 (:func:`~robustdepth.networks.relative_pose`)."""
        target, source = self._net_input(self.color(0, aug=aug)), self._net_input(self.color(frame_id, aug=aug))
        with (nullcontext() if grad else torch.no_grad()), self._autocast():
            return relative_pose(net, target, source, source_is_before=frame_id < 0)

    def reconstruct(self, frame_id: int, depth: torch.Tensor) -> torch.Tensor:
        """The clean source frame ``frame_id`` warped into the target with ``depth`` (full resolution)."""
        return warp(self.color(frame_id), depth, self.pose(frame_id), self.camera(0))

    # -- depth passes ------------------------------------------------------------------------
    def weight_casts(self) -> Any:
        """The span of one step's loss computation (the trainer enters it around its ``LossSet``). Under bf16,
        autocast keeps its bf16 copies of the trained weights until the span ends, so a network called more
        than once in a step (the pose net once per source frame, the depth net on several views) casts its
        weights once, and the gradients of its calls add up in bf16 before the one cast back to fp32 (instead
        of each call's bf16 gradient being cast and added in fp32). Autocast itself is off in the span: only
        the network passes (:meth:`_autocast`) run in bf16."""
        if self.cfg.train.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, enabled=False)

    def _autocast(self) -> Any:
        """bf16 autocast for network passes only (CPU or CUDA); losses run outside it, in fp32."""
        if self.cfg.train.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _net_input(self, image: torch.Tensor) -> torch.Tensor:
        """A network input in the configured memory format (channels_last matches the weights' layout)."""
        if self.cfg.train.channels_last:
            return image.contiguous(memory_format=torch.channels_last)
        return image

    def run_depth(self, net: Callable[..., DepthOutput], image: torch.Tensor, grad: bool) -> DepthOutput:
        """One depth-network pass with the configured precision/memory format; outputs in fp32."""
        image = self._net_input(image)
        with (nullcontext() if grad else torch.no_grad()), self._autocast():
            out = net(image)
        if self.cfg.train.precision == "bf16":
            out = DepthOutput(*([t.float() for t in group] for group in out))
        return out

    def depth(self, view: str = "input", grad: bool = True) -> DepthOutput:
        """The trained depth network on ``view`` (a no-grad request reuses a grad pass, detached)."""
        view = self.resolve_view(view)
        if not grad and ("depth", view, True) in self._memo:
            out = self._memo[("depth", view, True)]
            return self.memo(("depth", view, False),
                             lambda: DepthOutput(*([t.detach() for t in group] for group in out)))
        return self.memo(("depth", view, grad), lambda: self.run_depth(self.depth_net, self.image(view), grad))

    def disp_full(self, view: str, scale: int, grad: bool = True) -> torch.Tensor:
        """Sigmoid disparity of ``scale`` bilinearly upsampled to the input resolution (Monodepth2)."""
        view = self.resolve_view(view)

        def up() -> torch.Tensor:
            disp = self.depth(view, grad).disp[scale]
            if scale == 0:
                return disp
            return F.interpolate(disp, size=self.batch[color_key(0)].shape[-2:], mode="bilinear",
                                 align_corners=False)
        return self.memo(("disp_full", view, scale, grad), up)

    def scaled_disp_full(self, view: str, scale: int, grad: bool = True) -> torch.Tensor:
        """Scaled inverse depth d = d_min + (d_max − d_min)·σ at the input resolution."""
        return disp_to_depth(self.disp_full(view, scale, grad), self.min_depth, self.max_depth)[0]

    def depth_full(self, view: str, scale: int, grad: bool = True) -> torch.Tensor:
        """Depth 1/d at the input resolution from scale ``scale``."""
        return self.memo(("depth_full", self.resolve_view(view), scale, grad),
                         lambda: disp_to_depth(self.disp_full(view, scale, grad), self.min_depth, self.max_depth)[1])

    # -- providers ---------------------------------------------------------------------------
    def provide(self, name: str) -> Any:
        """A provider's output for this batch (teacher, prior, masks, …), computed once per step."""
        return self.memo(("provider", name), lambda: self.providers.get(name, self))
