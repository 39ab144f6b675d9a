"""Offline object masks for RoSAMDepth: segment every training frame once, load the cache into batches.

Methods (``providers.masks.method``):

* ``sam``           Segment Anything (``transformers`` ``SamModel`` + ``SamProcessor`` in the
                    mask-generation pipeline's segment-everything mode) from a LOCAL directory
                    (``providers.masks.sam_path``; defaults 32×32 points, pred-IoU 0.88, stability 0.95).
* ``felzenszwalb``  scikit-image graph segmentation — weight-free, the default here.
* ``slic``          scikit-image SLIC superpixels — weight-free.
* ``world``         the embedded world's object ids: an ORACLE (perfect instance masks), for ablation only;
                    read straight from the world (no cache needed). ``world_sky``: ``void`` (sky uncovered)
                    or ``region`` (the sky one more region: the same full coverage as felzenszwalb/slic, so
                    an oracle-vs-segmenter comparison differs in mask quality only).

SAM's overlapping masks become a non-overlapping partition (docs/methods.md § RoSAMDepth): near-duplicates
are suppressed first (mask-IoU NMS in order of predicted IoU, as SAM's own box NMS, ``sam_nms_iou``), then
each pixel belongs to the LARGEST surviving mask that contains it, and regions under
``sam_min_region_pixels`` become void — without NMS a losing near-duplicate keeps its non-overlapping
pixels as a thin sliver along the winner's edge, an "object" for AROM, ORE and SRC. Uncovered pixels =
0 = void, relabelled 1..R. The cache is ``CACHE/<sequence name>/<frame:06d>.png`` (uint16) at the training
resolution, plus ``CACHE/masks.json``: method, resolution, parameters and a FINGERPRINT (dataset, a content
digest of each sequence, the frames segmented, the segmenter settings) that every load checks — world
sequence names repeat across seeds, so names alone would load another world's masks silently.
Writing is resumable.

Training batches get the slot ``"masks"`` (H×W int64) from the sample hook below when
``providers.masks.enabled``; it is mirrored with the images. (Datasets here resize and never crop; a
cropping dataset must crop the masks with the same window.) Loss terms read ``ctx.provide("masks")``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from robustdepth.config import ConfigError
from robustdepth.data.base import DataError, FrameItem
from robustdepth.data.registry import HOOK_ANNOTATIONS, register_sample_hook
from robustdepth.providers.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

METHODS = ("sam", "felzenszwalb", "slic", "world")
ORACLE_METHODS = ("world",)
MANIFEST = "masks.json"
MAX_LABEL = 65535  # uint16 PNG
WORLD_SKY = ("void", "region")


@dataclass
class MasksConfig(ProviderConfig):
    method: str = "felzenszwalb"  # sam | felzenszwalb | slic | world (ORACLE: the world's object ids)
    cache: Any = None  # CACHE written by 'robustdepth priors masks' (not needed for method=world)
    # Which rendering of a frame is segmented when a split holds several conditions of it: masks are per
    # frame (the paper runs SAM once per training image); clear is the natural choice for aligned renders.
    source_condition: str = "clear"
    felzenszwalb_scale: float = 100.0  # skimage felzenszwalb: larger = larger segments
    felzenszwalb_sigma: float = 0.5  # pre-smoothing (pixels)
    felzenszwalb_min_size: int = 20  # minimum component size (pixels at the training resolution)
    slic_segments: int = 64  # approximate number of superpixels
    slic_compactness: float = 10.0
    sam_path: Any = None  # local directory with a SamModel + SamProcessor (save_pretrained layout)
    sam_points_per_side: int = 32  # UNSPECIFIED (suggested): SamAutomaticMaskGenerator defaults
    sam_pred_iou_thresh: float = 0.88
    sam_stability_score_thresh: float = 0.95
    sam_points_per_batch: int = 64
    # UNSPECIFIED (ours): near-duplicate suppression before the largest-mask-wins partition — a mask whose IoU
    # with a kept (higher predicted-IoU) mask exceeds this is dropped (SAM's own NMS threshold, 0.7)
    sam_nms_iou: float = 0.7
    # UNSPECIFIED (ours): partition regions smaller than this (pixels at the training resolution) become void,
    # as felzenszwalb_min_size bounds felzenszwalb's segments
    sam_min_region_pixels: int = 20
    sam_device: str = "cpu"
    world_sky: str = "void"  # oracle only: void = sky uncovered | region = sky is one more region (full coverage)


# -------------------------------------------------------------------------------------- post-processing


def relabel(labels: np.ndarray) -> np.ndarray:
    """Compact labels to 1..R (in increasing order of value), keeping 0 = void (int64)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be H×W, got shape {labels.shape}")
    values, inverse = np.unique(labels, return_inverse=True)
    offset = 0 if values[0] == 0 else 1
    return (inverse.reshape(labels.shape) + offset).astype(np.int64)


def suppress_duplicates(stack: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy mask-IoU NMS: indices of the masks kept, visiting masks by decreasing score (ties: larger first).

    A mask is dropped when its IoU with an already kept mask exceeds ``iou_threshold`` (≥ 1 keeps all).
    """
    flat = stack.reshape(len(stack), -1).astype(np.float32)
    area = flat.sum(1)
    order = np.lexsort((-area, -np.asarray(scores, dtype=np.float64)))
    inter = flat @ flat.T
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1.0)
    kept: list[int] = []
    for i in order:
        if area[i] > 0 and all(iou[i, j] <= iou_threshold for j in kept):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def drop_small_regions(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Regions of a partition with fewer than ``min_pixels`` pixels become void (0); relabelled 1..R."""
    labels = np.asarray(labels, dtype=np.int64)
    if min_pixels <= 1:
        return relabel(labels)
    counts = np.bincount(labels.ravel())
    small = counts < min_pixels
    small[0] = True
    return relabel(np.where(small[labels], 0, labels))


def partition_from_masks(masks: np.ndarray | list[np.ndarray], shape: tuple[int, int] | None = None,
                         scores: np.ndarray | list[float] | None = None, nms_iou: float = 1.0,
                         min_region_pixels: int = 0) -> np.ndarray:
    """Possibly overlapping boolean masks (N×H×W) → a partition: each pixel joins the LARGEST mask holding it.

    Before that, near-duplicates are suppressed (:func:`suppress_duplicates`, by ``scores`` — SAM's predicted
    IoU — or by area when none; ``nms_iou`` ≥ 1 = off); after it, regions under ``min_region_pixels`` become
    void. Pixels no mask covers are 0 (void); the surviving masks are relabelled 1..R (a mask that loses all
    its pixels to larger ones disappears). Ties in area go to the earlier mask.
    """
    stack = np.asarray(masks, dtype=bool)
    if stack.ndim != 3 or stack.shape[0] == 0:
        if shape is None:
            raise ValueError(f"masks must be N×H×W with N >= 1 (or give shape), got {stack.shape}")
        return np.zeros(shape, dtype=np.int64)
    if nms_iou < 1.0:
        area = stack.reshape(len(stack), -1).sum(1)
        keep = suppress_duplicates(stack, area if scores is None else np.asarray(scores), nms_iou)
        stack = stack[np.sort(keep)]
    order = np.argsort(-stack.reshape(len(stack), -1).sum(1), kind="stable")  # largest first
    ranked = stack[order]
    winner = ranked.argmax(0)  # the first (largest) mask containing each pixel
    covered = ranked.any(0)
    return drop_small_regions(np.where(covered, winner + 1, 0), min_region_pixels)


def labels_to_partition(labels: np.ndarray, void: int | None = None) -> np.ndarray:
    """A label image (every value one segment, ``void`` = uncovered) → the same partition form 1..R / 0."""
    labels = np.asarray(labels).astype(np.int64)
    if void is None:
        return relabel(labels + 1)
    return relabel(np.where(labels == void, 0, labels + (1 if void != 0 else 0)))


def centre_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output cell's CENTRE: floor((i + 0.5)·in/out), clipped (nearest, centre-aligned)."""
    return np.minimum(((np.arange(size_out) + 0.5) * size_in / size_out).astype(np.int64), size_in - 1)


def nearest_resize(labels: Any, height: int, width: int) -> Any:
    """Nearest-neighbour resize of an integer map (numpy array or torch tensor, …×H×W) by pixel-centre
    sampling: never mixes labels, and every output cell takes the label at its centre — the one rule every
    mask resize here uses (masks at decoder scales, world ids, masks vs training resolution)."""
    h, w = labels.shape[-2:]
    rows, cols = centre_indices(h, height), centre_indices(w, width)
    if isinstance(labels, torch.Tensor):
        rows_t = torch.from_numpy(rows).to(labels.device)
        cols_t = torch.from_numpy(cols).to(labels.device)
        return labels.index_select(-2, rows_t).index_select(-1, cols_t)
    return labels[..., rows, :][..., cols]


# ------------------------------------------------------------------------------------------- segmenters

Segmenter = Callable[[np.ndarray], np.ndarray]  # H×W×3 uint8 → H×W int64 partition (0 = void)


def felzenszwalb_segmenter(cfg: Any) -> Segmenter:
    from skimage.segmentation import felzenszwalb

    def run(image: np.ndarray) -> np.ndarray:
        return labels_to_partition(felzenszwalb(image, scale=float(cfg.felzenszwalb_scale),
                                                sigma=float(cfg.felzenszwalb_sigma),
                                                min_size=int(cfg.felzenszwalb_min_size)))
    return run


def slic_segmenter(cfg: Any) -> Segmenter:
    from skimage.segmentation import slic

    def run(image: np.ndarray) -> np.ndarray:
        return labels_to_partition(slic(image, n_segments=int(cfg.slic_segments),
                                        compactness=float(cfg.slic_compactness), start_label=1), void=0)
    return run


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode SAM's uncompressed RLE (``{"size": [h, w], "counts": [...]}``) to an H×W bool mask.

    The format transformers' mask-generation pipeline emits from 4.45 on (pycocotools-style, uncompressed):
    runs over the COLUMN-major (Fortran) flattening, alternating, the first run counting False pixels.
    Written here so the SAM path depends on no private transformers module (their layout moved in v5).
    """
    height, width = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, the mask has {height}×{width} pixels")
    values = np.arange(len(counts)) % 2 == 1  # runs alternate False, True, False, ...
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def _sam_pipeline(cfg: Any) -> Any:
    """The transformers mask-generation pipeline on a local SAM directory, without torchvision.

    Only public names (``MaskGenerationPipeline``, ``SamModel``, ``SamProcessor``, present from 4.45 on)
    and the pipeline's documented per-chunk outputs (RLE ``masks``, ``iou_scores``) are used. The stock
    post-processing runs torchvision's box NMS (unusable here); :func:`partition_from_masks` suppresses
    duplicates by mask IoU instead.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import MaskGenerationPipeline, SamModel, SamProcessor
    except ImportError as err:
        raise ImportError(f"masks method 'sam' needs transformers >= 4.45 ({err}): pip install robustdepth[hf]") \
            from None
    path = Path(str(cfg.sam_path)) if cfg.sam_path else None
    if path is None or not path.is_dir():
        raise FileNotFoundError(f"SAM directory {path} (providers.masks.sam_path) not found: give a local "
                                "directory holding a SamModel and SamProcessor (save_pretrained layout, e.g. "
                                "facebook/sam-vit-huge downloaded elsewhere); nothing is downloaded here")

    class PartitionMaskPipeline(MaskGenerationPipeline):
        def postprocess(self, model_outputs: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
            masks = [rle_to_mask(rle) for out in model_outputs for rle in out["masks"]]
            scores = [float(s) for out in model_outputs for s in out["iou_scores"].reshape(-1).tolist()]
            return {"masks": masks, "scores": scores}

    model = SamModel.from_pretrained(path, local_files_only=True)
    processor = SamProcessor.from_pretrained(path, local_files_only=True)
    return PartitionMaskPipeline(model=model.eval(), image_processor=processor.image_processor,
                                 device=torch.device(cfg.sam_device))


def sam_segmenter(cfg: Any) -> Segmenter:
    pipe = _sam_pipeline(cfg)

    def run(image: np.ndarray) -> np.ndarray:
        out = pipe(Image.fromarray(image), points_per_crop=int(cfg.sam_points_per_side),
                   pred_iou_thresh=float(cfg.sam_pred_iou_thresh),
                   stability_score_thresh=float(cfg.sam_stability_score_thresh),
                   points_per_batch=int(cfg.sam_points_per_batch))
        return partition_from_masks(out["masks"], shape=image.shape[:2], scores=out["scores"],
                                    nms_iou=float(cfg.sam_nms_iou), min_region_pixels=int(cfg.sam_min_region_pixels))
    return run


def build_segmenter(cfg: Any) -> Segmenter:
    """The image segmenter of ``providers.masks.method`` (not for the oracle ``world``)."""
    makers = {"sam": sam_segmenter, "felzenszwalb": felzenszwalb_segmenter, "slic": slic_segmenter}
    if cfg.method not in makers:
        raise ConfigError(f"providers.masks.method={cfg.method!r} has no image segmenter; methods: {sorted(makers)}"
                         + (" (world reads the world's object ids directly)" if cfg.method == "world" else ""))
    return makers[cfg.method](cfg)


def method_parameters(cfg: Any) -> dict[str, Any]:
    """The config keys that shape a method's output (stored in the manifest)."""
    prefix = {"sam": "sam_", "felzenszwalb": "felzenszwalb_", "slic": "slic_", "world": "world_"}[cfg.method]
    params = {k: v for k, v in dict(cfg).items() if k.startswith(prefix) and k not in ("sam_device",)}
    return {k: (str(v) if k == "sam_path" else v) for k, v in params.items()}


# ------------------------------------------------------------------------------------------------ cache


def mask_path(cache: Path, sequence_name: str, index: int) -> Path:
    return Path(cache) / sequence_name / f"{index:06d}.png"


def save_partition(path: Path, labels: np.ndarray) -> None:
    if labels.max(initial=0) > MAX_LABEL:
        raise ValueError(f"{labels.max()} regions do not fit a uint16 mask PNG ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint16)).save(path)


def load_partition(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"object mask {path} not found: write the cache with 'robustdepth priors masks'")
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int64)


def world_partition(item: FrameItem, height: int, width: int, sky: str = "void") -> np.ndarray:
    """ORACLE masks: the world's object ids at the training resolution (0 = sky/none: void, or with
    ``sky="region"`` one more region, so the oracle covers every pixel as the image segmenters do)."""
    if not hasattr(item.sequence, "object_ids"):
        raise DataError(f"masks method 'world' needs a world dataset; sequence {item.sequence.name} has no object ids")
    if sky not in WORLD_SKY:
        raise ConfigError(f"providers.masks.world_sky={sky!r}: use one of {WORLD_SKY}")
    ids = nearest_resize(np.asarray(item.sequence.object_ids(item.index)), height, width)
    return relabel(ids + 1) if sky == "region" else relabel(ids)


def read_manifest(cache: Path) -> dict[str, Any]:
    path = Path(cache) / MANIFEST
    if not path.is_file():
        raise DataError(f"mask cache {cache} has no {MANIFEST}: write it with "
                        "'robustdepth priors masks --data D --method M --out CACHE'")
    return json.loads(path.read_text())


def segmenter_settings(mcfg: Any, height: int, width: int) -> dict[str, Any]:
    """What shapes a cache's masks: method, its parameters, the condition segmented, the resolution."""
    return {"method": mcfg.method, "parameters": method_parameters(mcfg),
            "source_condition": mcfg.source_condition, "height": height, "width": width}


def sequence_digest(item: FrameItem) -> str:
    """Content identity of a sequence: its frame count and the bytes of its first frame's image file.

    Names do not identify data (world sequences are ``seq_000``… in every seed); one file read per
    sequence does.
    """
    seq = item.sequence
    digest = hashlib.sha1(f"{seq.name}|{seq.num_frames}".encode())
    path = Path(seq.image_path(0, item.condition))
    if path.is_file():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def frames_fingerprint(items: list[FrameItem]) -> dict[str, Any]:
    """{"sequences": {name: content digest}, "frames": {name: [indices]}} of the frames to segment/read."""
    sequences: dict[str, str] = {}
    frames: dict[str, list[int]] = {}
    for item in items:
        name = item.sequence.name
        if name not in sequences:
            sequences[name] = sequence_digest(item)
        frames.setdefault(name, []).append(int(item.index))
    return {"sequences": sequences, "frames": {k: sorted(v) for k, v in frames.items()}}


def check_manifest(cache: Path, mcfg: Any, height: int, width: int, dataset: str | None = None,
                   items: list[FrameItem] | None = None) -> dict[str, Any]:
    """A cache must hold the configured segmenter at the training resolution, for this dataset's frames.

    With ``dataset``/``items`` (what training will read), also checks the fingerprint: same dataset, every
    needed frame segmented, and each needed sequence's content digest equal to the one segmented.
    """
    meta = read_manifest(cache)
    if meta.get("method") != mcfg.method:
        raise DataError(f"mask cache {cache} holds method {meta.get('method')!r}, providers.masks.method is "
                        f"{mcfg.method!r}")
    if (meta.get("height"), meta.get("width")) != (height, width):
        raise DataError(f"mask cache {cache} is {meta.get('height')}×{meta.get('width')}, training runs at "
                        f"{height}×{width}: rewrite it at the training resolution")
    if items is None:
        return meta
    fp = meta.get("fingerprint")
    if not fp:
        raise DataError(f"mask cache {cache} has no fingerprint (written by an older robustdepth): rewrite it with "
                        "'robustdepth priors masks' into a new --out")
    wanted = segmenter_settings(mcfg, height, width)
    if fp.get("segmenter") != wanted:
        raise DataError(f"mask cache {cache} was segmented with {fp.get('segmenter')}, the config asks {wanted}")
    if dataset is not None and fp.get("dataset") != dataset:
        raise DataError(f"mask cache {cache} holds dataset {fp.get('dataset')!r}, data.dataset is {dataset!r}")
    cached = {name: set(v) for name, v in fp.get("frames", {}).items()}
    digests = fp.get("sequences", {})
    seen: set[str] = set()
    for item in items:
        name = item.sequence.name
        if item.index not in cached.get(name, ()):
            raise DataError(f"mask cache {cache} has no mask for {name} frame {item.index}: it was written for "
                            "other frames (another split or condition set); write the cache for this config")
        if name not in seen:
            seen.add(name)
            if digests.get(name) != sequence_digest(item):
                raise DataError(f"mask cache {cache} was segmented from other images for sequence {name} "
                                f"(content digest differs: another dataset root or world seed?); write a new cache")
    return meta


def frames_to_segment(cfg: Any, split: str | None = None) -> list[FrameItem]:
    """One item per (sequence, frame) of the training split, preferring ``source_condition``'s rendering."""
    from robustdepth.data import build_items

    frames: dict[tuple[str, int], FrameItem] = {}
    for item in build_items(cfg, split or cfg.data.train_split, train=True):
        key = (item.sequence.name, item.index)
        if key not in frames or item.condition == cfg.providers.masks.source_condition:
            frames[key] = item
    return list(frames.values())


def load_frame_rgb(item: FrameItem, height: int, width: int) -> np.ndarray:
    """The frame as the data pipeline sees it (LANCZOS-resized to the training resolution), H×W×3 uint8."""
    img = item.sequence.load_image(item.index, item.condition)
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def write_mask_cache(cfg: Any, out: Path, progress: bool = True, split: str | None = None) -> dict[str, Any]:
    """Segment every training frame at the training resolution into ``out`` (resumable); returns the manifest."""
    from tqdm.auto import tqdm

    mcfg = cfg.providers.masks
    if mcfg.method not in METHODS:
        raise ConfigError(f"unknown masks method {mcfg.method!r}; methods: {METHODS}")
    height, width = int(cfg.data.height), int(cfg.data.width)
    out = Path(out)
    items = frames_to_segment(cfg, split)
    frames = frames_fingerprint(items)
    fingerprint = {"dataset": str(cfg.data.dataset), "segmenter": segmenter_settings(mcfg, height, width), **frames}
    manifest = {"format": "robustdepth-object-masks/2", "method": mcfg.method,
                "oracle": mcfg.method in ORACLE_METHODS, "height": height, "width": width,
                "parameters": method_parameters(mcfg), "dataset": cfg.data.dataset, "source": str(cfg.data.root),
                "split": split or cfg.data.train_split,
                "rule": "mask-IoU NMS (sam), largest containing mask wins; 0 = void", "fingerprint": fingerprint}
    if (out / MANIFEST).is_file():
        old = read_manifest(out)
        same = {k: old.get(k) for k in ("method", "height", "width", "parameters")}
        if same != {k: manifest[k] for k in same}:
            raise DataError(f"mask cache {out} was written with {same}; refusing to mix it with {mcfg.method} "
                            f"{height}×{width} {manifest['parameters']}: use another --out")
        old_fp = old.get("fingerprint")
        if old_fp:
            clash = [n for n, d in frames["sequences"].items() if old_fp.get("sequences", {}).get(n, d) != d]
            if old_fp.get("dataset") != fingerprint["dataset"] or clash:
                raise DataError(f"mask cache {out} holds masks of other data ({old_fp.get('dataset')!r}"
                                + (f", other images for {clash[0]}" if clash else "")
                                + "): refusing to mix them; use another --out")
            for name, indices in old_fp.get("frames", {}).items():  # resumed writes keep what is already there
                merged = sorted(set(indices) | set(fingerprint["frames"].get(name, [])))
                fingerprint["frames"][name] = merged
                fingerprint["sequences"].setdefault(name, old_fp["sequences"][name])
    # a cache without a fingerprint (an older format) cannot be trusted frame by frame: segment everything again
    stale = (out / MANIFEST).is_file() and not read_manifest(out).get("fingerprint")
    todo = [it for it in items if stale or not mask_path(out, it.sequence.name, it.index).is_file()]
    segment = None if mcfg.method == "world" else build_segmenter(mcfg)
    out.mkdir(parents=True, exist_ok=True)
    # no bar when every mask is cached: a reused cache is checked on each run and would print an empty bar each time
    for item in tqdm(todo, desc=f"masks ({mcfg.method})", unit="frame", disable=not progress or not todo):
        if segment is None:
            labels = world_partition(item, height, width, str(mcfg.world_sky))
        else:
            labels = segment(load_frame_rgb(item, height, width))
        save_partition(mask_path(out, item.sequence.name, item.index), labels)
    manifest.update(frames=len(items), written=len(todo))
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out / MANIFEST)
    return manifest


# ------------------------------------------------------------------------------------- sample hook/slot


class MaskSupply:
    """Sample hook: the frame's partition into ``sample["masks"]`` (H×W int64), mirrored with the images.

    With ``items`` (the frames training reads), a cache's fingerprint is checked once, at construction.
    """

    def __init__(self, mcfg: Any, height: int, width: int, dataset: str | None = None,
                 items: list[FrameItem] | None = None) -> None:
        if mcfg.method not in METHODS:
            raise ConfigError(f"providers.masks.method={mcfg.method!r}; methods: {METHODS}")
        if mcfg.world_sky not in WORLD_SKY:
            raise ConfigError(f"providers.masks.world_sky={mcfg.world_sky!r}: use one of {WORLD_SKY}")
        self.method = mcfg.method
        self.sky = str(mcfg.world_sky)
        self.height, self.width = height, width
        self.cache = Path(str(mcfg.cache)) if mcfg.cache else None
        if self.cache is None and self.method != "world":
            raise DataError(f"providers.masks.cache is empty: write masks with 'robustdepth priors masks --method "
                            f"{self.method} --out CACHE' and set providers.masks.cache=CACHE")
        if self.cache is not None:
            check_manifest(self.cache, mcfg, height, width, dataset, items)

    def partition(self, item: FrameItem) -> np.ndarray:
        if self.cache is None:
            return world_partition(item, self.height, self.width, self.sky)
        labels = load_partition(mask_path(self.cache, item.sequence.name, item.index))
        if labels.shape != (self.height, self.width):
            raise DataError(f"object mask {mask_path(self.cache, item.sequence.name, item.index)} is "
                            f"{labels.shape[1]}×{labels.shape[0]}, training runs at {self.width}×{self.height}")
        return labels

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        labels = torch.from_numpy(np.ascontiguousarray(self.partition(item)))
        sample["masks"] = labels.flip(-1) if flipped else labels


@register_sample_hook(stage=HOOK_ANNOTATIONS)
def masks_hook_factory(cfg: Any, split: str, train: bool) -> MaskSupply | None:
    """Training samples get ``"masks"`` when ``providers.masks.enabled``."""
    if not train or not cfg.providers.masks.enabled:
        return None
    mcfg = cfg.providers.masks
    items = frames_to_segment(cfg, split) if mcfg.cache else None  # a cache (oracle ones too) is fingerprinted
    return MaskSupply(mcfg, int(cfg.data.height), int(cfg.data.width), str(cfg.data.dataset), items)


@register_provider
class Masks(Provider):
    """``ctx.provide("masks")`` → the batch's B×H×W int64 partition (0 = void), checked against the images."""

    name = "masks"
    Config = MasksConfig

    @classmethod
    def check_config(cls, cfg: Any, root_cfg: Any) -> None:
        if cfg.method not in METHODS:
            raise ConfigError(f"providers.masks.method={cfg.method!r}; methods: {METHODS}")
        if cfg.world_sky not in WORLD_SKY:
            raise ConfigError(f"providers.masks.world_sky={cfg.world_sky!r}: use one of {WORLD_SKY}")

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if "masks" not in ctx.batch:
            raise KeyError("batch has no 'masks' slot: providers.masks.enabled must be set before the dataset is "
                           "built (the sample hook robustdepth.providers.masks fills it)")
        masks = ctx.batch["masks"]
        image = ctx.image("clean")
        if masks.shape != (image.shape[0], *image.shape[-2:]):
            raise ValueError(f"masks {tuple(masks.shape)} do not match the images {tuple(image.shape)}")
        return masks.to(ctx.device).long()


__all__ = [
    "METHODS", "WORLD_SKY", "MaskSupply", "Masks", "MasksConfig", "build_segmenter", "centre_indices",
    "check_manifest", "drop_small_regions", "frames_fingerprint", "labels_to_partition", "load_partition",
    "mask_path", "nearest_resize", "partition_from_masks", "relabel", "rle_to_mask", "segmenter_settings",
    "sequence_digest", "suppress_duplicates", "world_partition", "write_mask_cache",
]
