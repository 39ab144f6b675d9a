"""Offline object masks: partition rule, segmenters (incl. a tiny random SAM), cache, batch slot, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robustdepth.config import load_config
from robustdepth.data import DataError, build_dataset
from robustdepth.priors.masks import (
    MasksConfig,
    build_segmenter,
    load_partition,
    mask_path,
    partition_from_masks,
    write_mask_cache,
)
from tests.conftest import corridor_overrides


def test_partition_gives_each_pixel_to_the_largest_containing_mask() -> None:
    big = np.zeros((6, 8), dtype=bool)
    big[:, :6] = True  # 36 px
    small = np.zeros_like(big)
    small[1:3, 4:8] = True  # 8 px, overlaps big at columns 4-5
    inside = np.zeros_like(big)
    inside[0, 0] = True  # entirely inside big: loses every pixel and disappears
    labels = partition_from_masks([small, inside, big])
    assert labels.dtype == np.int64 and labels.shape == (6, 8)
    assert sorted(np.unique(labels)) == [0, 1, 2]  # void + two surviving masks, relabelled 1..R
    big_id = labels[0, 0]
    assert (labels[big] == big_id).all(), "the overlap goes to the larger mask"
    assert (labels[small & ~big] != big_id).all() and (labels[small & ~big] > 0).all()
    assert (labels[~(big | small)] == 0).all(), "uncovered pixels are void"
    assert (partition_from_masks([], shape=(3, 4)) == 0).all()


@pytest.mark.parametrize("method", ["felzenszwalb", "slic"])
def test_weight_free_segmenters_partition_the_image(method: str) -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    image[:, :48] = (200, 40, 40)
    image[:, 48:] = (30, 160, 220)
    image = np.clip(image + rng.integers(0, 8, image.shape), 0, 255).astype(np.uint8)
    labels = build_segmenter(OmegaConf.structured(MasksConfig(method=method)))(image)
    assert labels.shape == (64, 96) and labels.min() >= 1  # full coverage, no void
    assert sorted(np.unique(labels)) == list(range(1, labels.max() + 1))
    assert not set(np.unique(labels[:, :40])) & set(np.unique(labels[:, 56:])), "segments follow the colour edge"


def _tiny_sam(path: Path) -> Path:
    """A random-weight SamModel + processor built from config (SAM: num_pos_feats = half the prompt hidden size)."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    vision = SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
                             output_channels=16, image_size=128, patch_size=16, global_attn_indexes=[1],
                             window_size=4, num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=128, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                   iou_head_hidden_dim=16)
    torch.manual_seed(0)
    SamModel(SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                       mask_decoder_config=decoder.to_dict())).save_pretrained(path)
    processor = SamImageProcessor(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128},
                                  mask_size={"longest_edge": 32}, mask_pad_size={"height": 32, "width": 32})
    SamProcessor(image_processor=processor).save_pretrained(path)
    return path


def test_sam_path_builds_a_partition_from_a_local_random_model(tmp_path: Path) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    sam_dir = _tiny_sam(tmp_path / "sam")
    # random weights: open the IoU / stability filters so masks come out; 4×4 points keep it quick
    cfg = OmegaConf.structured(MasksConfig(method="sam", sam_path=str(sam_dir), sam_points_per_side=4,
                                           sam_pred_iou_thresh=0.0, sam_stability_score_thresh=0.0))
    image = (np.random.default_rng(1).random((64, 192, 3)) * 255).astype(np.uint8)
    labels = build_segmenter(cfg)(image)
    assert labels.shape == (64, 192) and labels.max() >= 1
    assert sorted(set(np.unique(labels)) - {0}) == list(range(1, labels.max() + 1))


def test_missing_sam_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_sam_here"
    with pytest.raises(FileNotFoundError, match="no_sam_here"):
        build_segmenter(OmegaConf.structured(MasksConfig(method="sam", sam_path=str(missing))))


def _mask_cfg(corridor: Path, cache: Path | None, **extra: object) -> object:
    over = {"providers.masks.enabled": True, "providers.masks.method": "felzenszwalb", **extra}
    if cache is not None:
        over["providers.masks.cache"] = cache
    return load_config("monodepth2", corridor_overrides(corridor, **over))


def test_cache_is_resumable_and_checked(corridor: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = _mask_cfg(corridor, cache)
    meta = write_mask_cache(cfg, cache, progress=False)
    assert meta["frames"] == meta["written"] == 22  # 24 frames minus the first/last (no neighbours)
    manifest = json.loads((cache / "masks.json").read_text())
    assert manifest["method"] == "felzenszwalb" and (manifest["height"], manifest["width"]) == (64, 192)
    assert manifest["parameters"]["felzenszwalb_scale"] == 100.0
    files = sorted(cache.rglob("0*.png"))
    assert len(files) == 22
    labels = load_partition(files[0])
    assert labels.shape == (64, 192) and labels.min() >= 1
    # resumable: an existing frame is kept (not recomputed), a missing one is rewritten
    sentinel = np.full((64, 192), 3, dtype=np.uint16)
    from PIL import Image
    Image.fromarray(sentinel).save(files[0])
    files[1].unlink()
    again = write_mask_cache(cfg, cache, progress=False)
    assert again["written"] == 1 and files[1].is_file()
    assert (load_partition(files[0]) == 3).all()
    # a cache of another method or resolution is refused with a clear message
    with pytest.raises(DataError, match="refusing to mix"):
        write_mask_cache(_mask_cfg(corridor, cache, **{"providers.masks.method": "slic"}), cache, progress=False)
    with pytest.raises(DataError, match="holds method 'felzenszwalb'"):
        build_dataset(_mask_cfg(corridor, cache, **{"providers.masks.method": "slic"}), "train", True)


def test_masks_slot_flips_with_the_images(corridor: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_mask_cache(_mask_cfg(corridor, cache), cache, progress=False)
    plain = build_dataset(_mask_cfg(corridor, cache, **{"augment.flip_p": 0.0}), "train", True)
    flipped = build_dataset(_mask_cfg(corridor, cache, **{"augment.flip_p": 1.0}), "train", True)
    a, b = plain[3], flipped[3]
    assert a["masks"].dtype == torch.int64 and a["masks"].shape == (64, 192)
    item = plain.items[3]
    np.testing.assert_array_equal(a["masks"].numpy(), load_partition(mask_path(cache, item.sequence.name, item.index)))
    assert b["flipped"] and torch.equal(b["masks"], a["masks"].flip(-1))
    assert torch.equal(b[("color", 0)], a[("color", 0)].flip(-1))
    off = build_dataset(load_config("monodepth2", corridor_overrides(corridor)), "train", True)
    assert "masks" not in off[0]
    with pytest.raises(DataError, match="providers.masks.cache is empty"):
        build_dataset(_mask_cfg(corridor, None), "train", True)


def test_world_oracle_masks_follow_object_ids(tmp_path: Path) -> None:
    from robustdepth import world

    root = world.generate("tiny", 0, tmp_path / "world", progress=False)
    over = ["data.dataset=world", f"data.root={root}", "data.height=64", "data.width=192", "data.num_workers=0",
            "providers.masks.enabled=true", "providers.masks.method=world", "augment.flip_p=1.0"]
    ds = build_dataset(load_config("monodepth2", over), "train", True)
    sample, item = ds[0], ds.items[0]
    ids = np.asarray(item.sequence.object_ids(item.index))
    masks = sample["masks"].flip(-1).numpy()  # undo the flip
    assert masks.shape == ids.shape == (64, 192)
    np.testing.assert_array_equal(masks == 0, ids == 0)  # sky / nothing = void
    pairs = set(zip(ids.ravel().tolist(), masks.ravel().tolist()))
    assert len(pairs) == len(set(ids.ravel().tolist())), "one mask label per object id (a relabelling)"
    # the CLI writes the same oracle partition into a cache, labelled as an oracle
    from robustdepth.cli import main
    cache = tmp_path / "world_cache"
    assert main(["priors", "masks", "monodepth2", "data.dataset=world", "data.height=64", "data.width=192",
                 "--data", str(root), "--method", "world", "--out", str(cache), "--quiet"]) == 0
    assert json.loads((cache / "masks.json").read_text())["oracle"] is True
    np.testing.assert_array_equal(load_partition(mask_path(cache, item.sequence.name, item.index)), masks)
