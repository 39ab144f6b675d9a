"""Supply of degraded copies to training batches: online (translated in the data pipeline) or offline.

Both fill the same slots of a training sample, so loss terms never know which was used:

* ``"degraded"``           the degraded target frame, pixel-aligned with ``"color:0"`` (``color_key(0)``), un-jittered;
* ``"degraded_aug"``       the same with the sample's colour jitter / noise (the student's input);
* ``"is_degraded"``        whether this sample got a degradation (else the two slots hold the clean frame);
* ``"degraded_condition"`` the condition applied (``"clear"`` when none).

Which condition a sample gets follows the recipe's ordered rules with md4all's overwrite semantics
(:class:`~robustdepth.degrade.DegradeSampler`), drawn from the sample's own generator so runs and
resumes are reproducible. The clean frame is always kept for the losses and teachers.

Offline (``degrade.mode=offline``) reads two kinds of translated sets, per condition:

* a robustdepth set written once, at the training resolution, by ``robustdepth degrade write`` (with the
  image-space translators or a trained one-step translator, ``--translator DIR``):
  ``ROOT/<sequence name>/<condition>/<frame:06d>.png`` + ``degraded.json`` (``degrade.offline_root``);
* md4all-style folders, e.g. md4all's ForkGAN night/rain images (``degrade.translated_folders``:
  ``{night: DIR, rain: DIR}``): the translated copy of a frame is ``DIR/<its image path relative to
  data.root>`` at any size; it gets the frame's own crop (RobotCar) and is resized to the training resolution.

A condition found in ``translated_folders`` is read there, any other from ``offline_root``.
See docs/methods.md § md4all-DD and § ACDepth.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from robustdepth.config import ConfigError
from robustdepth.data.base import DataError, FrameItem, color_key, read_rgb, sample_seed
from robustdepth.data.registry import register_sample_hook
from robustdepth.degrade.sampler import DegradeSampler
from robustdepth.degrade.translators import translate


def sampler_from_config(degrade_cfg: Any) -> DegradeSampler:
    """The sampler of ``degrade.rules``; a bad rule (unknown condition, p or severity out of range) is a
    ConfigError naming the key."""
    try:
        return DegradeSampler([(r.condition, float(r.p), (float(r.severity[0]), float(r.severity[1])))
                               for r in degrade_cfg.rules])
    except (KeyError, ValueError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ConfigError(f"degrade.rules: {message}") from err


def offline_path(root: Path, item: FrameItem, condition: str) -> Path:
    """Where a robustdepth offline set keeps ``item``'s translation to ``condition``."""
    return root / item.sequence.name / condition / f"{item.index:06d}.png"


def translated_path(folder: Path, data_root: Path, item: FrameItem) -> Path:
    """md4all's rule: the translated copy is ``folder / <the frame's image path relative to data.root>``."""
    source = item.sequence.image_path(item.index, item.condition)
    try:
        relative = Path(source).resolve().relative_to(data_root.resolve())
    except ValueError:
        raise DataError(f"frame {source} is not under data.root={data_root}: md4all-style translated folders "
                        "mirror the dataset's layout below data.root") from None
    return folder / relative


def read_translated(item: FrameItem, path: Path, height: int, width: int) -> torch.Tensor:
    """A translated frame at any size → 3×H×W in [0, 1]: the sequence's own crop when it defines one
    (``crop_image``; RobotCar: md4all's top 768×1280), then a Lanczos resize to the training resolution."""
    img = read_rgb(path)
    crop = getattr(item.sequence, "crop_image", None)
    if crop is not None:
        img = crop(img, path)
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


class DegradeSupply:
    """The sample hook that fills the degraded slots (online or offline, per config)."""

    def __init__(self, degrade_cfg: Any, height: int, width: int, data_root: str | Path = ".") -> None:
        self.mode = degrade_cfg.mode
        self.sampler = sampler_from_config(degrade_cfg)
        self.root = Path(degrade_cfg.offline_root) if degrade_cfg.offline_root else None
        self.folders = {str(c): Path(str(f)) for c, f in dict(degrade_cfg.translated_folders or {}).items()}
        self.data_root = Path(data_root)
        self.height, self.width = height, width
        if self.mode == "offline":
            conditions = [r.condition for r in degrade_cfg.rules]
            for condition, folder in self.folders.items():
                if not folder.is_dir():
                    raise DataError(f"degrade.translated_folders.{condition}={folder}: folder not found")
            rest = [c for c in conditions if c not in self.folders]
            if rest or not self.folders:
                check_offline_root(self.root, rest, height, width)

    def _degrade(self, item: FrameItem, clean: torch.Tensor, gen: torch.Generator,
                 flipped: bool) -> tuple[torch.Tensor, str]:
        choice = self.sampler.sample(gen)
        if choice is None:
            return clean, "clear"
        condition, severity = choice
        if self.mode == "online":
            return translate(clean[None], condition, severity, generator=gen)[0], condition
        if condition in self.folders:
            tensor = read_translated(item, translated_path(self.folders[condition], self.data_root, item),
                                     self.height, self.width)
            return (tensor.flip(-1) if flipped else tensor), condition
        img = read_rgb(offline_path(self.root, item, condition))  # type: ignore[arg-type]
        if img.size != (self.width, self.height):
            raise DataError(f"offline degraded frame {offline_path(self.root, item, condition)} is "
                            f"{img.width}×{img.height}, training runs at {self.width}×{self.height}: "
                            "rewrite the set at the training resolution")
        tensor = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (tensor.flip(-1) if flipped else tensor), condition

    def __call__(self, item: FrameItem, sample: dict[str, Any], gen: torch.Generator, flipped: bool,
                 augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        degraded, condition = self._degrade(item, sample[color_key(0)], gen, flipped)
        sample["degraded"] = degraded
        sample["degraded_aug"] = augment(degraded) if condition != "clear" else sample[color_key(0, aug=True)]
        sample["is_degraded"] = condition != "clear"
        sample["degraded_condition"] = condition


@register_sample_hook
def degrade_hook_factory(cfg: Any, split: str, train: bool) -> DegradeSupply | None:
    """Training splits get the supply when ``degrade.mode`` is online or offline."""
    if not train or cfg.degrade.mode == "none":
        return None
    return DegradeSupply(cfg.degrade, cfg.data.height, cfg.data.width, cfg.data.root)


def check_offline_root(root: Path | None, conditions: list[str], height: int, width: int) -> None:
    """An offline set must exist, hold every configured condition, and match the training resolution."""
    manifest = (root / "degraded.json") if root else None
    if manifest is None or not manifest.is_file():
        raise DataError(f"offline degraded set {root} has no degraded.json: write it with "
                        "'robustdepth degrade write RECIPE --out ROOT'")
    meta = json.loads(manifest.read_text())
    missing = [c for c in conditions if c not in meta.get("conditions", [])]
    if missing:
        raise DataError(f"offline degraded set {root} lacks condition(s) {missing}; it has {meta.get('conditions')}")
    if (meta.get("height"), meta.get("width")) != (height, width):
        raise DataError(f"offline degraded set {root} is {meta.get('height')}×{meta.get('width')}, "
                        f"training runs at {height}×{width}")


def write_offline_set(cfg: Any, out: Path, conditions: list[str], severity: float = 1.0, seed: int = 0,
                      progress: bool = True, translator: str | Path | None = None) -> Path:
    """Translate every training target frame once, per condition, at the training resolution (the
    multi-tuple set: each clean frame with one copy per condition).

    ``translator``: a directory written by ``robustdepth degrade train-translator`` — its one-step model
    translates (every condition must be one it was trained for); else the image-space translators do.
    Resumable: frames already on disk are skipped. Each frame's randomness comes from (seed, frame),
    so a rerun reproduces the same images.
    """
    from tqdm.auto import tqdm

    from robustdepth.data import build_items

    model, manifest = None, {}
    if translator is not None:
        from robustdepth.degrade.learned_io import load_trained_translator

        model, manifest = load_trained_translator(translator)
        untrained = [c for c in conditions if c not in manifest["conditions"]]
        if untrained:
            raise DataError(f"translator {translator} was trained for {manifest['conditions']}, not {untrained}: "
                            "train it on those conditions too, or pass --conditions")
    items = build_items(cfg, cfg.data.train_split, train=True)
    frames = {(it.sequence.name, it.index): it for it in items}  # one per frame, any condition
    out.mkdir(parents=True, exist_ok=True)
    todo = [(it, c) for it in frames.values() for c in conditions if not offline_path(out, it, c).is_file()]
    for item, condition in tqdm(todo, desc="degrade write", unit="img", disable=not progress):
        img = item.sequence.load_image(item.index, item.condition)
        img = img.resize((cfg.data.width, cfg.data.height), Image.Resampling.LANCZOS)
        clean = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        gen = torch.Generator().manual_seed(sample_seed(seed, zlib.crc32(item.sequence.name.encode()), item.index))
        if model is not None:
            degraded = model.translate(clean, condition)[0].clamp(0, 1)
        else:
            degraded = translate(clean, condition, severity, generator=gen)[0]
        path = offline_path(out, item, condition)
        path.parent.mkdir(parents=True, exist_ok=True)
        array = (degraded.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(path)
    (out / "degraded.json").write_text(json.dumps({
        "conditions": sorted(set(conditions) | set(_existing_conditions(out))), "height": cfg.data.height,
        "width": cfg.data.width, "severity": severity, "seed": seed, "source": str(cfg.data.root),
        "dataset": cfg.data.dataset, "frames": len(frames),
        "translator": str(translator) if translator is not None else "image-space (robustdepth.degrade)"},
        indent=2))
    return out


def _existing_conditions(out: Path) -> list[str]:
    manifest = out / "degraded.json"
    return json.loads(manifest.read_text()).get("conditions", []) if manifest.is_file() else []
