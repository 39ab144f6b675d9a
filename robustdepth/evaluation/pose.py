"""Pose evaluation with Monodepth2's protocol: absolute trajectory error on 5-frame snippets.

Facts reproduced from nianticlabs/monodepth2 ``evaluate_pose.py`` (read, not copied):

* the pose network sees consecutive frames (i, i+1), un-augmented, and its output
  ``transformation_from_parameters(axisangle, translation)`` (no inversion) is T_{i→i+1}: points of
  camera i expressed in camera i+1 — :func:`robustdepth.networks.pose.relative_pose` with a later source;
* GT local poses are ``inv(inv(G[i−1]) · G[i])`` of the camera-to-world GT poses G (same direction);
* every start frame i = 0 … N−2 gives one snippet of the next ``track_length − 1`` = 4 motions (shorter
  at the end of the sequence, as MD2's slicing does); both snippets are chained from the identity
  (``dump_xyz``: positions of ``cam_to_world = cam_to_world · T`` after each motion);
* ``compute_ate`` aligns the first positions, fits one scale (least squares, ``Σ gt·pred / Σ pred²``)
  and returns ``sqrt(Σ‖scale·pred − gt‖²) / n`` — note: divided by n outside the root, as MD2 does;
* the reported number is the mean and the (population) standard deviation over all snippets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

TRACK_LENGTH = 5  # MD2: snippets of 5 frames (4 relative motions)


def dump_xyz(motions: Sequence[np.ndarray]) -> np.ndarray:
    """Camera positions ((k+1)×3) of a snippet chained from the identity: c ← c · T for each 4×4 motion T."""
    cam_to_world = np.eye(4)
    xyzs = [cam_to_world[:3, 3].copy()]
    for motion in motions:
        cam_to_world = cam_to_world @ motion
        xyzs.append(cam_to_world[:3, 3].copy())
    return np.stack(xyzs)


def compute_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """MD2's snippet ATE: first positions aligned, least-squares scale, sqrt(Σ‖error‖²) / n."""
    pred = pred_xyz + (gt_xyz[0] - pred_xyz[0])[None, :]
    denominator = float(np.sum(pred**2))
    scale = float(np.sum(gt_xyz * pred)) / denominator if denominator > 0 else 0.0
    return float(np.sqrt(np.sum((pred * scale - gt_xyz) ** 2)) / gt_xyz.shape[0])


def local_motions(global_poses: np.ndarray) -> np.ndarray:
    """(N−1)×4×4 T_{i→i+1} = inv(inv(G[i]) · G[i+1]) from N camera-to-world poses."""
    return np.stack([np.linalg.inv(np.linalg.inv(global_poses[i]) @ global_poses[i + 1])
                     for i in range(len(global_poses) - 1)])


def snippet_ates(pred_motions: np.ndarray, gt_global_poses: np.ndarray,
                 track_length: int = TRACK_LENGTH) -> np.ndarray:
    """One ATE per start frame i = 0 … N−2 (MD2's loop), snippets of ``track_length − 1`` motions."""
    gt_motions = local_motions(gt_global_poses)
    if len(pred_motions) != len(gt_motions):
        raise ValueError(f"{len(pred_motions)} predicted motions for {len(gt_global_poses)} GT poses "
                         f"(need one per consecutive pair: {len(gt_motions)})")
    if track_length < 2:
        raise ValueError(f"track_length={track_length}: a snippet needs at least 2 frames")
    steps = track_length - 1
    return np.array([compute_ate(dump_xyz(gt_motions[i:i + steps]), dump_xyz(pred_motions[i:i + steps]))
                     for i in range(len(gt_motions))])


def constant_motion(count: int, translation: Sequence[float] = (0.0, 0.0, -1.0)) -> np.ndarray:
    """The pose floor: the same straight motion (no rotation) between every pair of frames.

    Under MD2's per-snippet scale alignment only its direction matters: this is what a predictor that
    knows nothing but "the car drives straight ahead" scores.
    """
    motion = np.eye(4)
    motion[:3, 3] = translation
    return np.tile(motion, (count, 1, 1))


@dataclass
class PoseResult:
    """ATE per snippet of one or more sequences, and its summary."""

    ates: dict[str, np.ndarray]
    track_length: int = TRACK_LENGTH

    def summary(self) -> dict[str, Any]:
        every = np.concatenate(list(self.ates.values())) if self.ates else np.zeros(0)
        per_sequence = {name: {"ate_mean": float(a.mean()), "ate_std": float(a.std()), "snippets": int(a.size)}
                        for name, a in self.ates.items()}
        return {"ate_mean": float(every.mean()) if every.size else float("nan"),
                "ate_std": float(every.std()) if every.size else float("nan"),
                "snippets": int(every.size), "track_length": self.track_length, "sequences": per_sequence}


def reference_poses(sequence: Any, indices: Sequence[int]) -> np.ndarray:
    """GT camera-to-world poses of ``indices``: a sequence's ``gt_poses`` file when it has one (KITTI
    odometry: camera 0, what MD2 scores against), else its per-frame ``pose()``."""
    stored = getattr(sequence, "gt_poses", None)
    if stored is not None:
        return np.stack([stored[i] for i in indices])
    poses = [sequence.pose(i) for i in indices]
    if any(p is None for p in poses):
        raise ValueError(f"sequence {sequence.name} has no GT pose for some frames: pose evaluation needs them")
    return np.stack(poses)


@torch.inference_mode()
def predict_motions(pose_net: torch.nn.Module, dataset: Any, device: torch.device,
                    batch_size: int = 8) -> dict[str, tuple[list[int], np.ndarray]]:
    """T_{i→i+1} for every item of a ``frame_ids=[0, 1]`` dataset, grouped by sequence in frame order.

    Returns ``{sequence name: (target indices, K×4×4 motions)}``; frames come un-augmented, resized to
    the dataset's resolution exactly as for training.
    """
    from robustdepth.data.base import color_key
    from robustdepth.networks.pose import relative_pose

    pose_net.eval()
    grouped: dict[str, tuple[Any, list[int], list[np.ndarray]]] = {}
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        target = torch.stack([s[color_key(0)] for s in samples]).to(device)
        source = torch.stack([s[color_key(1)] for s in samples]).to(device)
        matrices = relative_pose(pose_net, target, source, source_is_before=False).matrix.double().cpu().numpy()
        for sample, matrix in zip(samples, matrices):
            item = dataset.items[sample["index"]]
            entry = grouped.setdefault(item.sequence.name, (item.sequence, [], []))
            entry[1].append(item.index)
            entry[2].append(matrix)
    out = {}
    for name, (_, indices, mats) in grouped.items():
        order = np.argsort(indices)
        out[name] = ([indices[i] for i in order], np.stack([mats[i] for i in order]))
    return out


def evaluate_motions(motions: dict[str, tuple[list[int], np.ndarray]], sequences: dict[str, Any],
                     track_length: int = TRACK_LENGTH) -> PoseResult:
    """Score predicted motions of each sequence against its GT poses (consecutive frames required)."""
    ates = {}
    for name, (indices, pred) in motions.items():
        if indices != list(range(indices[0], indices[0] + len(indices))):
            raise ValueError(f"sequence {name}: pose evaluation needs consecutive frames, got gaps")
        gt = reference_poses(sequences[name], [*indices, indices[-1] + 1])
        ates[name] = snippet_ates(pred, gt, track_length)
    return PoseResult(ates, track_length)


__all__ = [
    "TRACK_LENGTH",
    "PoseResult",
    "compute_ate",
    "constant_motion",
    "dump_xyz",
    "evaluate_motions",
    "local_motions",
    "predict_motions",
    "reference_poses",
    "snippet_ates",
]
