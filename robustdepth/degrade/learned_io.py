"""The learned translator in the data path: train it on unpaired folders, save it, load it for `degrade write`.

``robustdepth degrade train-translator`` trains :class:`~robustdepth.degrade.learned.OneStepTranslator` (the
one-step SD-Turbo + LoRA translator ACDepth builds its adverse training data with; docs/methods.md § ACDepth)
on a folder of clear images and one folder per adverse condition — unpaired, with cycle consistency and
adversarial losses (:func:`~robustdepth.degrade.learned.train_translator`, one condition after another, the
adapters shared). It writes a *translator directory*::

    OUT/translator_adapters.safetensors   LoRA + skip-convolution weights (OneStepTranslator.save_adapters)
    OUT/translator.json                   base weights (a local diffusers directory, or "tiny"), ranks,
                                          conditions, training size and steps, per-condition loss history

``robustdepth degrade write RECIPE --translator OUT`` then writes the offline multi-tuple set (every training
frame once per condition) with it, which ``degrade.mode=offline`` reads (robustdepth.degrade.supply).
Nothing is downloaded: the base is a local folder, or ``tiny`` (random weights of the real classes, tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from robustdepth.config import ConfigError
from robustdepth.data.base import DataError, read_rgb

MANIFEST = "translator.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TINY = "tiny"


def list_images(folder: Path) -> list[Path]:
    """Every image under ``folder`` (recursive, sorted); a missing or empty folder is a DataError."""
    if not folder.is_dir():
        raise DataError(f"translator training folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"translator training folder {folder} holds no .png/.jpg images")
    return files


def load_resized(path: Path, height: int, width: int) -> torch.Tensor:
    """One image as 3×H×W in [0, 1], resized (Lanczos) to ``height``×``width``."""
    img = read_rgb(path)
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class FolderBatches:
    """Endless random batches (B×3×H×W) from an image folder, reproducible from ``seed``."""

    def __init__(self, folder: Path, height: int, width: int, batch_size: int, seed: int) -> None:
        self.files = list_images(folder)
        self.height, self.width, self.batch_size = height, width, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            picks = torch.randint(len(self.files), (self.batch_size,), generator=self.generator).tolist()
            yield torch.stack([load_resized(self.files[i], self.height, self.width) for i in picks])


@dataclass
class TranslatorTraining:
    """What `degrade train-translator` trains: folders, base weights, size and schedule."""

    clear: Path
    adverse: dict[str, Path]  # condition → folder of real adverse images (unpaired with `clear`)
    out: Path
    base: str = TINY  # local diffusers directory (SD-Turbo layout) or "tiny"
    steps: int = 100  # per condition
    height: int = 256
    width: int = 256
    batch_size: int = 1
    lr: float = 1e-5
    unet_rank: int = 128
    vae_rank: int = 4
    clip_vision: str | None = None  # local CLIPVisionModel directory → vision-aided discriminator
    seed: int = 0
    tiny_config: dict[str, Any] = field(default_factory=dict)


def parse_adverse(values: Sequence[str]) -> dict[str, Path]:
    """``["night=DIR", "rain=DIR"]`` → {condition: folder}; a malformed entry is a ConfigError."""
    out: dict[str, Path] = {}
    for value in values:
        condition, sep, folder = value.partition("=")
        if not sep or not condition or not folder:
            raise ConfigError(f"--adverse {value!r}: expected CONDITION=FOLDER (e.g. night=data/night_frames)")
        out[condition] = Path(folder)
    return out


def build_translator(base: str, unet_rank: int, vae_rank: int, tiny_config: dict[str, Any] | None = None) -> Any:
    """The untrained translator on ``base``: a local diffusers directory, or ``tiny`` random weights."""
    from robustdepth.degrade.learned import OneStepTranslator

    if base == TINY:
        return OneStepTranslator.build_tiny({**(tiny_config or {}), "unet_rank": unet_rank, "vae_rank": vae_rank})
    return OneStepTranslator.from_pretrained(base, unet_rank=unet_rank, vae_rank=vae_rank)


def train_from_folders(job: TranslatorTraining) -> Path:
    """Train the translator clear ↔ each adverse condition in turn; write the translator directory, return it."""
    from robustdepth.degrade.learned import train_translator

    if not job.adverse:
        raise ConfigError("degrade train-translator needs at least one --adverse CONDITION=FOLDER")
    for folder in (job.clear, *job.adverse.values()):
        list_images(folder)  # a missing or empty folder fails before the (large) model is built
    translator = build_translator(job.base, job.unet_rank, job.vae_rank, job.tiny_config)
    unknown = [c for c in job.adverse if c not in translator.prompts or c == "clear"]
    if unknown:
        raise ConfigError(f"translator conditions {unknown} have no prompt; valid: "
                          f"{[c for c in translator.prompts if c != 'clear']}")
    history: dict[str, list[dict[str, float]]] = {}
    for offset, (condition, folder) in enumerate(sorted(job.adverse.items())):
        clear = FolderBatches(job.clear, job.height, job.width, job.batch_size, job.seed * 1000 + 2 * offset)
        adverse = FolderBatches(folder, job.height, job.width, job.batch_size, job.seed * 1000 + 2 * offset + 1)
        history[condition] = train_translator(translator, clear, adverse, condition, job.steps, lr=job.lr,
                                              clip_vision_dir=job.clip_vision)
    translator.save_adapters(job.out)
    manifest = {"base": job.base, "unet_rank": job.unet_rank, "vae_rank": job.vae_rank,
                "conditions": sorted(job.adverse), "height": job.height, "width": job.width,
                "steps_per_condition": job.steps, "batch_size": job.batch_size, "lr": job.lr,
                "tiny_config": job.tiny_config, "clear": str(job.clear),
                "adverse": {c: str(p) for c, p in job.adverse.items()}, "history": history}
    (job.out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return job.out


def load_trained_translator(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """(translator in eval mode, its manifest) from a directory written by :func:`train_from_folders`."""
    folder = Path(directory)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{folder} is not a trained translator (no {MANIFEST}); train one with "
                        "'robustdepth degrade train-translator --clear DIR --adverse night=DIR --out OUT'")
    manifest = json.loads(manifest_path.read_text())
    translator = build_translator(manifest["base"], int(manifest["unet_rank"]), int(manifest["vae_rank"]),
                                  manifest.get("tiny_config") or {})
    translator.load_adapters(folder)
    return translator.eval(), manifest


__all__ = ["FolderBatches", "TranslatorTraining", "build_translator", "list_images", "load_resized",
           "load_trained_translator", "parse_adverse", "train_from_folders"]
