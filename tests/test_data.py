"""The dataset interface: samples, deterministic augmentation, K scaling, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import DataError, color_key, key_slot, parse_intrinsics, translation_key
from tests.conftest import corridor_overrides, write_corridor_sequence


@pytest.fixture(scope="module")
def small_seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corridor_sequence(tmp_path_factory.mktemp("data") / "seq", frames=6, height=64, width=192)


def _dataset(root: Path, train: bool = True, **extra: object):
    cfg = load_config("monodepth2", corridor_overrides(root, **extra))
    return build_dataset(cfg, "train", train=train)


def test_sample_keys_shapes_and_K_scaling(small_seq: Path) -> None:
    ds = _dataset(small_seq, **{"data.height": 128, "data.width": 384})
    assert len(ds) == 4  # frames 1..4 have both neighbours
    sample = ds[0]
    for f in (0, -1, 1):
        assert sample[color_key(f)].shape == (3, 128, 384)
        assert sample[color_key(f, aug=True)].shape == (3, 128, 384)
    K = sample["K"]
    # stored at 192 wide: fx = 0.58·192 -> scaled ×2 to 384
    assert torch.allclose(K, torch.tensor([[0.58 * 384, 0, 192], [0, 1.92 * 128, 64], [0, 0, 1]]), atol=1e-4)
    # translation norms from poses.txt are not read by the folder dataset: velocity needs a pose source
    assert translation_key(-1) not in sample


def test_batch_keys_are_strings_that_survive_collation(small_seq: Path) -> None:
    """One key style: every sample key is a string, per-frame slots spelled "<slot>:<frame>" by the helpers."""
    assert [color_key(0), color_key(-1), color_key(1, aug=True), color_key("s")] == [
        "color:0", "color:-1", "color_aug:1", "color:s"]
    assert translation_key(-1) == "translation_norm:-1" and color_key(np.int64(-1)) == "color:-1"
    assert key_slot(color_key(-1, aug=True)) == "color_aug" and key_slot("K") == "K"
    for bad in (1.0, True):
        with pytest.raises(TypeError, match="int offset"):
            color_key(bad)  # type: ignore[arg-type]
    ds = _dataset(small_seq)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert all(isinstance(k, str) for k in batch)
    assert {color_key(f, aug) for f in (0, -1, 1) for aug in (False, True)} <= set(batch)
    assert batch[color_key(0)].shape == (2, 3, 64, 192)


def test_augmentation_is_a_function_of_seed_epoch_index(small_seq: Path) -> None:
    ds = _dataset(small_seq, **{"augment.color_jitter_p": 1.0, "augment.flip_p": 0.5})
    a, b = ds[1], ds[1]
    assert torch.equal(a[color_key(0, aug=True)], b[color_key(0, aug=True)])
    other_epoch = ds[1 + len(ds)]  # encoded index: epoch 1, item 1
    assert not torch.equal(a[color_key(0, aug=True)], other_epoch[color_key(0, aug=True)])
    # jitter changes the network input but never the frames the losses use
    assert not torch.equal(a[color_key(0, aug=True)], a[color_key(0)])


def test_flip_mirrors_every_frame_and_gt(small_seq: Path) -> None:
    ds = _dataset(small_seq, **{"augment.flip_p": 1.0, "augment.color_jitter_p": 0.0, "data.load_depth_gt": True})
    plain = _dataset(small_seq, **{"augment.flip_p": 0.0, "augment.color_jitter_p": 0.0,
                                   "data.load_depth_gt": True})
    flipped, straight = ds[2], plain[2]
    assert flipped["flipped"] and not straight["flipped"]
    for f in (0, -1, 1):
        assert torch.equal(flipped[color_key(f)], straight[color_key(f)].flip(-1))
    assert torch.equal(flipped["depth_gt"], straight["depth_gt"].flip(-1))


def test_eval_dataset_has_gt_and_every_frame(small_seq: Path) -> None:
    ds = _dataset(small_seq, train=False)
    assert len(ds) == 6
    sample = ds[0]
    assert sample["depth_gt"].shape == (1, 64, 192) and color_key(-1) not in sample
    assert torch.equal(sample[color_key(0)], sample[color_key(0, aug=True)])  # no augmentation at eval


def test_corrupt_image_error_names_file(small_seq: Path, tmp_path: Path) -> None:
    root = tmp_path / "seq"
    shutil.copytree(small_seq, root)
    (root / "000002.png").write_bytes(b"not a png at all")
    ds = _dataset(root)
    with pytest.raises(DataError, match=r"cannot read image .*000002\.png"):
        ds[1]


def test_missing_file_and_intrinsics_errors(small_seq: Path, tmp_path: Path) -> None:
    root = tmp_path / "seq"
    shutil.copytree(small_seq, root)
    (root / "intrinsics.txt").unlink()
    with pytest.raises(DataError, match=r"no intrinsics for .*intrinsics.txt"):
        _dataset(root)
    with pytest.raises(DataError, match="is not a folder"):
        _dataset(tmp_path / "nowhere")
    cfg = load_config("monodepth2", corridor_overrides(small_seq, **{"data.options": "{bogus: 1}"}))
    with pytest.raises(DataError, match=r"data.options .*'bogus'"):
        build_dataset(cfg, "train", train=True)


def test_intrinsics_shapes() -> None:
    K = parse_intrinsics([100, 110, 50, 40], "test")
    assert np.allclose(K, [[100, 0, 50], [0, 110, 40], [0, 0, 1]])
    assert parse_intrinsics(np.eye(3).reshape(-1).tolist(), "test").shape == (3, 3)
    with pytest.raises(DataError, match=r"need \[fx, fy, cx, cy\] or a 3×3 matrix, got 5"):
        parse_intrinsics([1, 2, 3, 4, 5], "test")
    with pytest.raises(DataError, match=r"do not look like a pinhole K"):
        parse_intrinsics([[1, 0, 0], [0, 1, 0], [0, 0, 2]], "test")


def test_sample_hooks_run_by_stage_whatever_their_registration_order() -> None:
    """A normalisation hook registered before a view hook still runs after it (data.HOOK_* stages)."""
    from robustdepth import data as data_pkg

    order: list[str] = []

    def factory(name: str):
        return lambda cfg, split, train: (lambda item, sample, gen, flipped, augment: order.append(name))

    saved = list(data_pkg.SAMPLE_HOOKS)
    try:
        data_pkg.SAMPLE_HOOKS.clear()
        data_pkg.register_sample_hook(stage=data_pkg.HOOK_NORMALISE)(factory("normalise"))
        data_pkg.register_sample_hook(stage=data_pkg.HOOK_ANNOTATIONS)(factory("masks"))
        data_pkg.register_sample_hook(factory("view_a"))
        data_pkg.register_sample_hook(stage=data_pkg.HOOK_VIEWS)(factory("view_b"))
        for f in data_pkg.ordered_hook_factories():
            f(None, "train", True)(None, {}, None, False, None)
    finally:
        data_pkg.SAMPLE_HOOKS[:] = saved
    assert order == ["view_a", "view_b", "masks", "normalise"]
