"""Offline object masks for RoSAMDepth: segment every training frame once, load the cache into batches.

Methods (``providers.masks.method``):

* ``sam``           Segment Anything (``transformers`` ``SamModel`` + ``SamProcessor`` in the
                    mask-generation pipeline's segment-everything mode) from a LOCAL directory
                    (``providers.masks.sam_path``; defaults 32×32 points, pred-IoU 0.88, stability 0.95).
* ``felzenszwalb``  scikit-image graph segmentation — weight-free, the default here.
* ``slic``          scikit-image SLIC superpixels — weight-free.
* ``world``         the embedded world's object ids: an ORACLE (perfect instance masks, sky = void), for
                    ablation only; read straight from the world (no cache needed).

Every method's output goes through one post-processing step: a non-overlapping partition where each
pixel belongs to the LARGEST mask that contains it (METHODS.md §5 b), uncovered pixels = 0 = void,
relabelled 1..R. The cache is ``CACHE/<sequence name>/<frame:06d>.png`` (uint16) at the training
resolution, plus ``CACHE/masks.json`` (method, resolution, parameters). Writing is resumable.

Training batches get the slot ``"masks"`` (H×W int64) from the sample hook below when
``providers.masks.enabled``; it is mirrored with the images. (Datasets here resize and never crop; a
cropping dataset must crop the masks with the same window.) Loss terms read ``ctx.provide("masks")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from robustdepth.data import register_sample_hook
from robustdepth.data.base import DataError, FrameItem
from robustdepth.priors.base import Provider, ProviderConfig, register_provider

if TYPE_CHECKING:
    from robustdepth.training.context import StepContext

METHODS = ("sam", "felzenszwalb", "slic", "world")
ORACLE_METHODS = ("world",)
MANIFEST = "masks.json"
MAX_LABEL = 65535  # uint16 PNG


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
    sam_device: str = "cpu"


# -------------------------------------------------------------------------------------- post-processing


def relabel(labels: np.ndarray) -> np.ndarray:
    """Compact labels to 1..R (in increasing order of value), keeping 0 = void (int64)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be H×W, got shape {labels.shape}")
    values, inverse = np.unique(labels, return_inverse=True)
    offset = 0 if values[0] == 0 else 1
    return (inverse.reshape(labels.shape) + offset).astype(np.int64)


def partition_from_masks(masks: np.ndarray | list[np.ndarray], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Possibly overlapping boolean masks (N×H×W) → a partition: each pixel joins the LARGEST mask holding it.

    Pixels no mask covers are 0 (void); the surviving masks are relabelled 1..R (a mask that loses all its
    pixels to larger ones disappears). Ties in area go to the earlier mask.
    """
    stack = np.asarray(masks, dtype=bool)
    if stack.ndim != 3 or stack.shape[0] == 0:
        if shape is None:
            raise ValueError(f"masks must be N×H×W with N >= 1 (or give shape), got {stack.shape}")
        return np.zeros(shape, dtype=np.int64)
    order = np.argsort(-stack.reshape(len(stack), -1).sum(1), kind="stable")  # largest first
    ranked = stack[order]
    winner = ranked.argmax(0)  # the first (largest) mask containing each pixel
    covered = ranked.any(0)
    return relabel(np.where(covered, winner + 1, 0))


def labels_to_partition(labels: np.ndarray, void: int | None = None) -> np.ndarray:
    """A label image (every value one segment, ``void`` = uncovered) → the same partition form 1..R / 0."""
    labels = np.asarray(labels).astype(np.int64)
    if void is None:
        return relabel(labels + 1)
    return relabel(np.where(labels == void, 0, labels + (1 if void != 0 else 0)))


def nearest_resize(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an integer map by pixel-centre sampling (never mixes labels)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return labels[rows][:, cols]


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


def _sam_pipeline(cfg: Any) -> Any:
    """The transformers mask-generation pipeline on a local SAM directory, without torchvision.

    The stock post-processing runs torchvision's box NMS (unusable here). We keep every mask that passes
    the IoU/stability filters instead: the largest-mask-wins partition absorbs duplicates, so NMS would
    only change which of two near-identical masks names a region.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import MaskGenerationPipeline, SamModel, SamProcessor
        from transformers.models.sam.image_processing_pil_sam import _rle_to_mask
    except ImportError as err:
        raise ImportError(f"masks method 'sam' needs transformers ({err}): pip install robustdepth[hf]") from None
    path = Path(str(cfg.sam_path)) if cfg.sam_path else None
    if path is None or not path.is_dir():
        raise FileNotFoundError(f"SAM directory {path} (providers.masks.sam_path) not found: give a local "
                                "directory holding a SamModel and SamProcessor (save_pretrained layout, e.g. "
                                "facebook/sam-vit-huge downloaded elsewhere); nothing is downloaded here")

    class PartitionMaskPipeline(MaskGenerationPipeline):
        def postprocess(self, model_outputs: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
            masks = [_rle_to_mask(rle) for out in model_outputs for rle in out["masks"]]
            scores = [s for out in model_outputs for s in out["iou_scores"].tolist()]
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
        return partition_from_masks(out["masks"], shape=image.shape[:2])
    return run


def build_segmenter(cfg: Any) -> Segmenter:
    """The image segmenter of ``providers.masks.method`` (not for the oracle ``world``)."""
    makers = {"sam": sam_segmenter, "felzenszwalb": felzenszwalb_segmenter, "slic": slic_segmenter}
    if cfg.method not in makers:
        raise ValueError(f"providers.masks.method={cfg.method!r} has no image segmenter; methods: {sorted(makers)}"
                         + (" (world reads the world's object ids directly)" if cfg.method == "world" else ""))
    return makers[cfg.method](cfg)


def method_parameters(cfg: Any) -> dict[str, Any]:
    """The config keys that shape a method's output (stored in the manifest)."""
    prefix = {"sam": "sam_", "felzenszwalb": "felzenszwalb_", "slic": "slic_", "world": "-"}[cfg.method]
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


def world_partition(item: FrameItem, height: int, width: int) -> np.ndarray:
    """ORACLE masks: the world's object ids at the training resolution (0 = sky/none = void)."""
    if not hasattr(item.sequence, "object_ids"):
        raise DataError(f"masks method 'world' needs a world dataset; sequence {item.sequence.name} has no object ids")
    ids = item.sequence.object_ids(item.index)
    return relabel(nearest_resize(ids, height, width))


def read_manifest(cache: Path) -> dict[str, Any]:
    path = Path(cache) / MANIFEST
    if not path.is_file():
        raise DataError(f"mask cache {cache} has no {MANIFEST}: write it with "
                        "'robustdepth priors masks --data D --method M --out CACHE'")
    return json.loads(path.read_text())


def check_manifest(cache: Path, cfg: Any, height: int, width: int) -> dict[str, Any]:
    """A cache must hold the configured method at the training resolution."""
    meta = read_manifest(cache)
    if meta.get("method") != cfg.method:
        raise DataError(f"mask cache {cache} holds method {meta.get('method')!r}, providers.masks.method is "
                        f"{cfg.method!r}")
    if (meta.get("height"), meta.get("width")) != (height, width):
        raise DataError(f"mask cache {cache} is {meta.get('height')}×{meta.get('width')}, training runs at "
                        f"{height}×{width}: rewrite it at the training resolution")
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
        raise ValueError(f"unknown masks method {mcfg.method!r}; methods: {METHODS}")
    height, width = int(cfg.data.height), int(cfg.data.width)
    out = Path(out)
    manifest = {"format": "robustdepth-object-masks/1", "method": mcfg.method,
                "oracle": mcfg.method in ORACLE_METHODS, "height": height, "width": width,
                "parameters": method_parameters(mcfg), "dataset": cfg.data.dataset, "source": str(cfg.data.root),
                "split": split or cfg.data.train_split, "rule": "largest containing mask wins; 0 = void"}
    if (out / MANIFEST).is_file():
        old = read_manifest(out)
        same = {k: old.get(k) for k in ("method", "height", "width", "parameters")}
        if same != {k: manifest[k] for k in same}:
            raise DataError(f"mask cache {out} was written with {same}; refusing to mix it with {mcfg.method} "
                            f"{height}×{width} {manifest['parameters']}: use another --out")
    items = frames_to_segment(cfg, split)
    todo = [it for it in items if not mask_path(out, it.sequence.name, it.index).is_file()]
    segment = None if mcfg.method == "world" else build_segmenter(mcfg)
    out.mkdir(parents=True, exist_ok=True)
    for item in tqdm(todo, desc=f"masks ({mcfg.method})", unit="frame", disable=not progress):
        if segment is None:
            labels = world_partition(item, height, width)
        else:
            labels = segment(load_frame_rgb(item, height, width))
        save_partition(mask_path(out, item.sequence.name, item.index), labels)
    manifest.update(frames=len(items), written=len(todo))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


# ------------------------------------------------------------------------------------- sample hook/slot


class MaskSupply:
    """Sample hook: the frame's partition into ``sample["masks"]`` (H×W int64), mirrored with the images."""

    def __init__(self, mcfg: Any, height: int, width: int) -> None:
        if mcfg.method not in METHODS:
            raise ValueError(f"providers.masks.method={mcfg.method!r}; methods: {METHODS}")
        self.method = mcfg.method
        self.height, self.width = height, width
        self.cache = Path(str(mcfg.cache)) if mcfg.cache else None
        if self.cache is None and self.method != "world":
            raise DataError(f"providers.masks.cache is empty: write masks with 'robustdepth priors masks --method "
                            f"{self.method} --out CACHE' and set providers.masks.cache=CACHE")
        if self.cache is not None:
            check_manifest(self.cache, mcfg, height, width)

    def partition(self, item: FrameItem) -> np.ndarray:
        if self.cache is None:
            return world_partition(item, self.height, self.width)
        labels = load_partition(mask_path(self.cache, item.sequence.name, item.index))
        if labels.shape != (self.height, self.width):
            raise DataError(f"object mask {mask_path(self.cache, item.sequence.name, item.index)} is "
                            f"{labels.shape[1]}×{labels.shape[0]}, training runs at {self.width}×{self.height}")
        return labels

    def __call__(self, item: FrameItem, sample: dict[Any, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        labels = torch.from_numpy(np.ascontiguousarray(self.partition(item)))
        sample["masks"] = labels.flip(-1) if flipped else labels


@register_sample_hook
def masks_hook_factory(cfg: Any, split: str, train: bool) -> MaskSupply | None:
    """Training samples get ``"masks"`` when ``providers.masks.enabled``."""
    if not train or not cfg.providers.masks.enabled:
        return None
    return MaskSupply(cfg.providers.masks, int(cfg.data.height), int(cfg.data.width))


@register_provider
class Masks(Provider):
    """``ctx.provide("masks")`` → the batch's B×H×W int64 partition (0 = void), checked against the images."""

    name = "masks"
    Config = MasksConfig

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if "masks" not in ctx.batch:
            raise KeyError("batch has no 'masks' slot: providers.masks.enabled must be set before the dataset is "
                           "built (the sample hook robustdepth.priors.masks fills it)")
        masks = ctx.batch["masks"]
        image = ctx.image("clean")
        if masks.shape != (image.shape[0], *image.shape[-2:]):
            raise ValueError(f"masks {tuple(masks.shape)} do not match the images {tuple(image.shape)}")
        return masks.to(ctx.device).long()


__all__ = [
    "METHODS", "MaskSupply", "Masks", "MasksConfig", "build_segmenter", "check_manifest", "labels_to_partition",
    "load_partition", "mask_path", "nearest_resize", "partition_from_masks", "relabel", "world_partition",
    "write_mask_cache",
]
