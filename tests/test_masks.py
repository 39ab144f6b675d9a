"""Offline object masks: partition rule, segmenters (incl. a tiny random SAM), cache, batch slot, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robustdepth.configure import load_config
from robustdepth.data import DataError, build_dataset
from robustdepth.data.base import color_key
from robustdepth.providers.masks import (
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
    assert torch.equal(b[color_key(0)], a[color_key(0)].flip(-1))
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


# ----------------------------------------------------------------------- SAM post-processing: NMS, min size


def _car_duplicates() -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """A 960 px car, three near-duplicates (1–2 px shifts, one dilated), another car and the road."""
    car = np.zeros((64, 96), bool)
    car[20:44, 10:50] = True
    dilated = np.zeros_like(car)
    dilated[19:45, 9:51] = True
    other = np.zeros_like(car)
    other[25:40, 60:85] = True
    road = np.zeros_like(car)
    road[40:, :] = True
    masks = [car, np.roll(car, 2, axis=1), np.roll(car, (1, -2), axis=(0, 1)), dilated, other, road]
    return masks, [0.97, 0.95, 0.93, 0.91, 0.96, 0.99], car


def _widths(labels: np.ndarray) -> list[int]:
    out = []
    for r in range(1, labels.max() + 1):
        rows, cols = np.nonzero(labels == r)
        out.append(int(min(np.ptp(rows), np.ptp(cols)) + 1))
    return out


def test_sam_partition_suppresses_near_duplicates_instead_of_leaving_slivers() -> None:
    masks, scores, car = _car_duplicates()
    plain = partition_from_masks(masks, scores=scores)  # largest-wins only: the losers keep edge slivers
    assert plain.max() == 5 and min(_widths(plain)) <= 3
    labels = partition_from_masks(masks, scores=scores, nms_iou=0.7, min_region_pixels=20)
    assert labels.max() == 3 and min(_widths(labels)) > 3, "road, one car, the other car — no slivers"
    car_id = labels[30, 30]
    # the kept duplicate is the best-scored one (the exact car), minus what the larger road takes
    np.testing.assert_array_equal(labels == car_id, car & ~masks[5])
    # a distinct but tiny mask (12 px) is no duplicate: NMS keeps it, the minimum region size voids it
    speck = np.zeros_like(car)
    speck[2:5, 70:74] = True
    kept = partition_from_masks([*masks, speck], scores=[*scores, 0.9], nms_iou=0.7)
    assert kept.max() == 4 and kept[3, 71] > 0
    voided = partition_from_masks([*masks, speck], scores=[*scores, 0.9], nms_iou=0.7, min_region_pixels=20)
    assert voided.max() == 3 and voided[3, 71] == 0


def test_sam_segmenter_applies_nms_and_min_size_with_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SAM segmenter hands the pipeline's masks and predicted IoUs to the partition with its config's
    NMS threshold and minimum region size (a stand-in pipeline returns the near-duplicate car)."""
    from robustdepth.providers import masks as masks_module

    masks, scores, _ = _car_duplicates()
    speck = np.zeros_like(masks[0])
    speck[2:5, 70:74] = True

    class FakePipe:
        def __call__(self, image: object, **kwargs: object) -> dict[str, object]:
            assert kwargs["points_per_crop"] == 4 and kwargs["pred_iou_thresh"] == 0.5
            return {"masks": [*masks, speck], "scores": [*scores, 0.9]}

    monkeypatch.setattr(masks_module, "_sam_pipeline", lambda cfg: FakePipe())
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    cfg = MasksConfig(method="sam", sam_points_per_side=4, sam_pred_iou_thresh=0.5)
    assert build_segmenter(OmegaConf.structured(cfg))(image).max() == 3  # road + 2 cars (defaults 0.7, 20 px)
    cfg.sam_nms_iou, cfg.sam_min_region_pixels = 1.0, 0
    assert build_segmenter(OmegaConf.structured(cfg))(image).max() == 6  # 3 duplicates' slivers + the speck


def test_nms_order_threshold_and_min_region_size() -> None:
    from robustdepth.providers.masks import drop_small_regions, suppress_duplicates

    a = np.zeros((10, 10), bool)
    a[:, :6] = True  # 60 px
    b = np.zeros_like(a)
    b[:, 2:8] = True  # 60 px, IoU with a = 40/80 = 0.5
    c = a.copy()
    c[0, 6] = True  # 61 px, IoU with a = 60/61
    stack = np.stack([a, b, c])
    assert suppress_duplicates(stack, np.array([0.9, 0.8, 0.7]), 0.7).tolist() == [0, 1]  # c duplicates a
    assert suppress_duplicates(stack, np.array([0.7, 0.8, 0.9]), 0.7).tolist() == [2, 1]  # score decides
    assert sorted(suppress_duplicates(stack, np.zeros(3), 0.4).tolist()) == [2], "equal scores: larger first"
    assert sorted(suppress_duplicates(stack, np.zeros(3), 1.0).tolist()) == [0, 1, 2]
    labels = np.array([[1, 1, 2], [1, 1, 3], [0, 3, 3]])
    np.testing.assert_array_equal(drop_small_regions(labels, 3), [[1, 1, 0], [1, 1, 2], [0, 2, 2]])


def _rle_encode_445(mask: np.ndarray) -> dict[str, object]:
    """transformers 4.45's uncompressed RLE, written from its documented format: runs over the column-major
    flattening, alternating, the first run counting False pixels (0 when the first pixel is True)."""
    flat = mask.T.reshape(-1)
    counts, current, run = [], False, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def test_rle_decode_inverts_the_pipeline_encoding() -> None:
    from robustdepth.providers.masks import rle_to_mask

    rng = np.random.default_rng(0)
    for shape in ((5, 7), (16, 9)):
        for p in (0.1, 0.5, 0.95):
            mask = rng.random(shape) < p
            mask[0, 0] = p > 0.5  # both starts: a False run first and a True pixel first
            np.testing.assert_array_equal(rle_to_mask(_rle_encode_445(mask)), mask)
    with pytest.raises(ValueError, match="counts sum"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    # and the installed transformers' own encoder (private: its name and module moved between versions)
    import importlib

    encoder = None
    for module, name in (("transformers.models.sam.image_processing_sam", "_mask_to_rle"),
                         ("transformers.models.sam.image_processing_sam", "_mask_to_rle_pytorch")):
        try:
            encoder = getattr(importlib.import_module(module), name)
            break
        except (ImportError, AttributeError):
            continue
    if encoder is not None:
        masks = torch.from_numpy(rng.random((3, 12, 17)) < 0.4)
        for rle, mask in zip(encoder(masks), masks):
            np.testing.assert_array_equal(rle_to_mask(rle), mask.numpy())


def test_sam_path_uses_only_public_transformers_names() -> None:
    """The lower bound (transformers 4.45) has MaskGenerationPipeline, SamModel and SamProcessor at the top level;
    the SAM path must import nothing from a private module (the v5 layout moved them)."""
    import inspect
    import re

    from robustdepth.providers import masks

    source = inspect.getsource(masks._sam_pipeline)
    assert re.findall(r"from transformers(\.[\w.]+)? import ([\w, ]+)", source) == [
        ("", "MaskGenerationPipeline, SamModel, SamProcessor")]
    assert "transformers>=4.45" in (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()


# --------------------------------------------------------------------------------------- cache fingerprint


def _copy_corridor(corridor: Path, dest: Path, change_first: bool) -> Path:
    import shutil

    from PIL import Image

    shutil.copytree(corridor, dest)
    if change_first:
        first = dest / "000000.png"
        img = np.asarray(Image.open(first)).copy()
        img[0, 0] = 255 - img[0, 0]
        Image.fromarray(img).save(first)
    return dest


def test_cache_fingerprint_refuses_other_images_frames_and_settings(corridor: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_mask_cache(_mask_cfg(corridor, cache), cache, progress=False)
    fp = json.loads((cache / "masks.json").read_text())["fingerprint"]
    assert fp["dataset"] == "folder" and fp["segmenter"]["method"] == "felzenszwalb"
    assert sum(len(v) for v in fp["frames"].values()) == 22
    assert build_dataset(_mask_cfg(corridor, cache), "train", True)[0]["masks"].shape == (64, 192)
    # same sequence name and frames, other images (another world seed, another root): refused on load
    other = _copy_corridor(corridor, tmp_path / "other" / corridor.name, change_first=True)
    with pytest.raises(DataError, match="other images for sequence"):
        build_dataset(_mask_cfg(other, cache), "train", True)
    # an identical copy elsewhere loads (the digest is of the content, not of the path)
    same = _copy_corridor(corridor, tmp_path / "same" / corridor.name, change_first=False)
    assert "masks" in build_dataset(_mask_cfg(same, cache), "train", True)[0]
    # other segmenter settings at the same method/resolution
    with pytest.raises(DataError, match="segmented with"):
        build_dataset(_mask_cfg(corridor, cache, **{"providers.masks.felzenszwalb_scale": 300.0}), "train", True)
    # a frame training needs that the cache never segmented
    manifest = json.loads((cache / "masks.json").read_text())
    name = next(iter(manifest["fingerprint"]["frames"]))
    manifest["fingerprint"]["frames"][name] = manifest["fingerprint"]["frames"][name][1:]
    (cache / "masks.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="has no mask for"):
        build_dataset(_mask_cfg(corridor, cache), "train", True)
    # writing into a cache of other images is refused as well
    with pytest.raises(DataError, match="other data"):
        write_mask_cache(_mask_cfg(other, cache), cache, progress=False)
    del manifest["fingerprint"]
    (cache / "masks.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="no fingerprint"):
        build_dataset(_mask_cfg(corridor, cache), "train", True)
    # an older cache without a fingerprint is segmented again in full (and then fingerprinted) on writing
    assert write_mask_cache(_mask_cfg(corridor, cache), cache, progress=False)["written"] == 22
    assert "masks" in build_dataset(_mask_cfg(corridor, cache), "train", True)[0]


def test_world_oracle_with_sky_as_region_covers_every_pixel(tmp_path: Path) -> None:
    from robustdepth import world
    from robustdepth.providers.masks import world_partition

    root = world.generate("tiny", 0, tmp_path / "world", progress=False)
    over = ["data.dataset=world", f"data.root={root}", "data.height=64", "data.width=192", "data.num_workers=0"]
    item = build_dataset(load_config("monodepth2", over), "train", True).items[0]
    ids = np.asarray(item.sequence.object_ids(item.index))
    void = world_partition(item, 64, 192, "void")
    full = world_partition(item, 64, 192, "region")
    assert (ids == 0).any() and (void == 0).any() and full.min() == 1, "sky: void vs one more region"
    assert full.max() == void.max() + 1
    np.testing.assert_array_equal(full[void > 0], void[void > 0] + 1)  # objects keep their partition
    assert load_config("rosam_world_masks").providers.masks.world_sky == "region"
