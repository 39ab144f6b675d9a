"""Pose evaluation (Monodepth2's evaluate_pose.py protocol): hand-computed ATE, an independent re-implementation
on the real odometry-04 GT poses (GT vs GT, scaled, noisy), and `robustdepth eval-pose` end to end."""

from __future__ import annotations

import json
import math
from functools import reduce
from pathlib import Path

import numpy as np
import pytest
import torch

from robustdepth.checkpoint import FORMAT, code_version
from robustdepth.cli import main
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.data.kitti_odometry import read_poses
from robustdepth.evaluation.pose import (
    compute_ate,
    constant_motion,
    dump_xyz,
    evaluate_motions,
    local_motions,
    snippet_ates,
)
from robustdepth.evaluation.pose_cli import evaluate_pose_checkpoint
from robustdepth.networks import DepthNet, PoseNet
from tests.test_kitti_odometry import ODOM, needs_odometry


def independent_ates(pred_motions: np.ndarray, gt_poses: np.ndarray, steps: int = 4) -> list[float]:
    """The protocol re-derived: GT motions T_i = inv(G[i+1])·G[i]; each snippet's positions are the
    translations of the running products T_i·T_{i+1}·…; align first positions, least-squares scale from
    lstsq, error = sqrt(Σ‖·‖²) / n."""
    gt_steps = [np.linalg.inv(gt_poses[i + 1]) @ gt_poses[i] for i in range(len(gt_poses) - 1)]
    out = []
    for i in range(len(gt_steps)):
        def positions(chain: list[np.ndarray]) -> np.ndarray:
            prefixes = [reduce(np.matmul, chain[:k], np.eye(4)) for k in range(len(chain) + 1)]
            return np.array([p[:3, 3] for p in prefixes])
        gt = positions(gt_steps[i:i + steps])
        pred = positions(list(pred_motions[i:i + steps]))
        pred = pred - pred[0] + gt[0]
        scale = np.linalg.lstsq(pred.reshape(-1, 1), gt.reshape(-1), rcond=None)[0][0]
        out.append(math.sqrt(float(((scale * pred - gt) ** 2).sum())) / len(gt))
    return out


def test_compute_ate_hand_value() -> None:
    gt = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2]], dtype=np.float64)
    pred = np.array([[5, 5, 5], [6, 5, 6], [5, 5, 7]], dtype=np.float64)  # offset (5, 5, 5) removed first
    # aligned pred = (0,0,0), (1,0,1), (0,0,2); scale = (1 + 4) / (1 + 1 + 4) = 5/6
    # errors: 0; (5/6, 0, −1/6); (0, 0, −1/3) → Σ² = 30/36 → sqrt / 3
    assert compute_ate(gt, pred) == pytest.approx(math.sqrt(30 / 36) / 3, rel=1e-12)
    assert compute_ate(gt, 7 * gt) == pytest.approx(0.0, abs=1e-12)  # any scale is aligned away


def test_dump_xyz_chains_right_multiplied_motions() -> None:
    a = np.eye(4)
    a[:3, 3] = [1, 0, 0]
    b = np.eye(4)
    b[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90° about z
    b[:3, 3] = [0, 2, 0]
    xyz = dump_xyz([a, b, a])
    # c1 = a → (1,0,0); c2 = a·b → R_a·t_b + t_a = (1,2,0); c3 = a·b·a → (1,2,0) + R_b·(1,0,0) = (1,3,0)
    assert xyz.tolist() == [[0, 0, 0], [1, 0, 0], [1, 2, 0], [1, 3, 0]]


def test_snippets_one_per_start_frame_shorter_at_the_end() -> None:
    poses = np.tile(np.eye(4), (7, 1, 1))
    poses[:, 2, 3] = np.arange(7) ** 1.5  # accelerating along z
    pred = constant_motion(6)
    ates = snippet_ates(pred, poses)
    assert ates.shape == (6,)  # N − 1 start frames, as MD2's loop
    assert ates[-1] == pytest.approx(0.0, abs=1e-12)  # the last snippet has one motion: scale fits it exactly
    assert ates[0] > 0  # constant velocity cannot fit acceleration
    assert np.allclose(ates, independent_ates(pred, poses))
    with pytest.raises(ValueError, match="5 predicted motions for 7 GT poses"):
        snippet_ates(pred[:5], poses)


@needs_odometry
def test_real_seq04_gt_scaled_and_noisy_trajectories() -> None:
    gt = read_poses(ODOM / "poses" / "04.txt")
    # GT motions computed here, not with local_motions: T_i = inv(G[i+1]) · G[i]
    motions = np.stack([np.linalg.inv(gt[i + 1]) @ gt[i] for i in range(len(gt) - 1)])
    assert np.allclose(local_motions(gt), motions)
    ates = snippet_ates(motions, gt)
    assert ates.shape == (50,) and np.abs(ates).max() < 1e-9  # GT vs GT: 0
    scaled = motions.copy()
    scaled[:, :3, 3] *= 3.7  # a monocular network's arbitrary scale
    assert np.abs(snippet_ates(scaled, gt)).max() < 1e-9
    rng = np.random.default_rng(0)
    noisy = motions.copy()
    noisy[:, :3, 3] += rng.normal(0, 0.1, (len(noisy), 3))
    ates = snippet_ates(noisy, gt)
    assert np.allclose(ates, independent_ates(noisy, gt), rtol=1e-10, atol=1e-12)
    assert 0.01 < ates.mean() < 0.2
    floor = snippet_ates(constant_motion(len(motions)), gt)
    assert np.allclose(floor, independent_ates(constant_motion(len(motions)), gt))
    # sequence 04 is a straight road: "drive straight ahead" is a strong floor
    assert floor.mean() < 0.05


def pose_checkpoint(path: Path, yaw: float, translation: tuple[float, float, float]) -> Path:
    """A checkpoint whose pose network outputs the same motion for every pair (zeroed last layer, bias set):
    a rotation of ``yaw`` radians about the camera's y axis and ``translation``."""
    cfg = load_config("monodepth2", ["data.height=64", "data.width=192"])
    depth, pose = DepthNet(cfg.model.num_layers, scales=list(cfg.model.scales)), PoseNet(cfg.model.pose_num_layers)
    last = pose.decoder.net[3]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[1] = yaw / 0.01  # ×0.01 output scale; the first frame's 6 values: axis-angle, translation
        last.bias[3:6] = torch.tensor(translation) / 0.01
    payload = {"format": FORMAT, "version": {k: str(v) for k, v in code_version().items()}, "config": to_dict(cfg),
               "models": {"depth": depth.state_dict(), "pose": pose.state_dict()}, "step": 0}
    torch.save(payload, path)
    return path


@needs_odometry
def test_eval_pose_checkpoint_on_real_seq04(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaw = 0.02
    ckpt = pose_checkpoint(tmp_path / "ck.pt", yaw, (0.1, 0.0, -0.5))
    overrides = ["data.dataset=kitti_odometry", f"data.root={ODOM}", "data.num_workers=0"]
    result = evaluate_pose_checkpoint(ckpt, overrides, device="cpu")
    gt = read_poses(ODOM / "poses" / "04.txt")
    # the network's (i, i+1) output used as is (MD2: no inversion): M = [R_y(yaw) | t]
    motion = np.eye(4)
    motion[:3, :3] = [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
    motion[:3, 3] = [0.1, 0.0, -0.5]
    expected = independent_ates(np.tile(motion, (50, 1, 1)), gt)
    inverted = independent_ates(np.tile(np.linalg.inv(motion), (50, 1, 1)), gt)
    assert abs(np.mean(expected) - np.mean(inverted)) > 1e-3  # the direction is visible in the score
    assert np.allclose(result.ates["odometry/04/image_2"], expected, rtol=1e-6, atol=1e-9)
    out = tmp_path / "pose.json"
    assert main(["eval-pose", str(ckpt), *overrides, "--out", str(out), "--device", "cpu"]) == 0
    saved = json.loads(out.read_text())
    assert saved["snippets"] == 50 and saved["track_length"] == 5
    assert saved["ate_mean"] == pytest.approx(float(np.mean(expected)), rel=1e-6)
    assert saved["ate_std"] == pytest.approx(float(np.std(expected)), rel=1e-5)
    assert "Trajectory error" in capsys.readouterr().out


def test_eval_pose_refuses_a_run_without_pose_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config("monodepth2", ["data.height=64", "data.width=192"])
    payload = {"format": FORMAT, "version": {k: str(v) for k, v in code_version().items()}, "config": to_dict(cfg),
               "models": {"depth": DepthNet(18, scales=[0, 1, 2, 3]).state_dict()}, "step": 0}
    torch.save(payload, tmp_path / "ck.pt")
    assert main(["eval-pose", str(tmp_path / "ck.pt"), "--device", "cpu"]) == 2
    assert "has no pose network" in capsys.readouterr().err


class PosedSequence:
    """A sequence that knows only per-frame camera-to-world poses (as the embedded world's sequences do)."""

    name = "posed"

    def __init__(self, poses: np.ndarray) -> None:
        self.poses = poses

    def pose(self, index: int) -> np.ndarray | None:
        return self.poses[index] if index < len(self.poses) else None


def test_any_sequence_with_per_frame_poses_is_scored() -> None:
    rng = np.random.default_rng(1)
    poses = np.tile(np.eye(4), (8, 1, 1))
    poses[:, :3, 3] = np.cumsum(rng.normal([0, 0, 1], 0.2, (8, 3)), axis=0)
    motions = np.stack([np.linalg.inv(poses[i + 1]) @ poses[i] for i in range(1, 6)])  # pairs (1,2) … (5,6)
    result = evaluate_motions({"posed": ([1, 2, 3, 4, 5], motions)}, {"posed": PosedSequence(poses)})
    assert result.summary()["snippets"] == 5 and abs(result.summary()["ate_mean"]) < 1e-9
    with pytest.raises(ValueError, match="no GT pose"):
        evaluate_motions({"posed": ([5, 6, 7], np.tile(np.eye(4), (3, 1, 1)))}, {"posed": PosedSequence(poses)})
    with pytest.raises(ValueError, match="consecutive frames"):
        evaluate_motions({"posed": ([1, 3], np.tile(np.eye(4), (2, 1, 1)))}, {"posed": PosedSequence(poses)})
