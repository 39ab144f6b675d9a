"""Importers: the field's released depth weights → a robustdepth checkpoint.

    robustdepth weights import monodepth2 mono_640x192/ --out runs/md2_mono_640x192
    robustdepth weights import md4all md4allDDa_nuscenes.ckpt --out runs/md4all_nuscenes

Every layout ends in the same place: ``RUN/checkpoints/last.pt`` (the robustdepth format, read with
``weights_only=True`` by ``eval``, ``predict``, ``export``, ``bench corruptions`` and the teacher provider)
and ``RUN/IMPORT.json`` recording the source files (with SHA-256), the layout, the licence of the
weights and every note about what could not be carried over. Two families of files exist:

* **Monodepth2 folders** (``encoder.pth``, ``depth.pth``, optional ``pose_encoder.pth`` + ``pose.pth``;
  nianticlabs/monodepth2's ``save_model``): bare state dicts whose key names our networks share
  (``encoder.conv1.weight`` …, ``decoder.0.conv.conv.weight`` …, pose ``net.0.weight`` …); ``encoder.pth``
  also stores ``height``/``width``. Robust-Depth and WeatherDepth's Monodepth2 variant save this layout.
* **Lightning checkpoints** (md4all, ACDepth): ``state_dict`` with the depth network under
  ``depth_model.`` (same inner names) and ``hyper_parameters.cfg`` a yacs ``CfgNode`` read as a plain
  dict without running code (:mod:`robustdepth.weights.safe_pickle`). The config gives the ResNet depth,
  resize, depth range and input normalisation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from robustdepth.checkpoint import save_checkpoint
from robustdepth.config import ConfigError, to_dict
from robustdepth.configure import load_config
from robustdepth.networks import DepthNet, PoseNet
from robustdepth.networks.depth_decoder import NUM_CH_DEC
from robustdepth.networks.resnet import MD2_INPUT_MEAN, MD2_INPUT_STD, load_state_dict_checked, read_state_dict
from robustdepth.weights.safe_pickle import load_lightning_checkpoint, to_plain

__all__ = ["LAYOUTS", "ImportedWeights", "Layout", "import_weights", "read_layout"]

MD2_LICENCE = ("Monodepth2 licence (Niantic): non-commercial use only "
               "(github.com/nianticlabs/monodepth2/blob/master/LICENSE)")
MD4ALL_LICENCE = "CC BY-NC-SA 4.0: non-commercial use only (github.com/md4all/md4all/blob/main/LICENSE)"
MD2_FOLDER_FILES = ("encoder.pth", "depth.pth")
MD2_POSE_FILES = ("pose_encoder.pth", "pose.pth")


@dataclass
class ImportedWeights:
    """Our networks' state dicts and what the source says about using them."""

    depth: dict[str, Tensor]
    pose: dict[str, Tensor] | None
    num_layers: int
    scales: list[int]
    height: int | None = None
    width: int | None = None
    min_depth: float = 0.1
    max_depth: float = 100.0
    overrides: list[str] = field(default_factory=list)  # further config overrides (dataset, protocol)
    input_normalization: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source_config: dict[str, Any] | None = None
    scale: str = "up-to-scale"  # metric when the source's training fixed the scale (stereo, ego-speed velocity loss)
    trained_on: str = ""  # the source's training data, as far as its files say


@dataclass(frozen=True)
class Layout:
    """One released format: how to read it and whose terms the weights come under."""

    name: str
    project: str
    url: str
    licence: str
    read: Callable[[Path], ImportedWeights]
    default_size: tuple[int, int] = (192, 640)


# ------------------------------------------------------------------------------------------ key helpers


def strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Tensor]:
    """Tensors of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, Tensor)}


def strip_module(state: dict[str, Any]) -> dict[str, Any]:
    """Drop a DistributedDataParallel ``module.`` prefix when every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def resnet_depth(encoder_keys: list[str], prefix: str = "encoder.") -> int:
    """18, 34 or 50 from the keys of a torchvision-named ResNet (bottlenecks have conv3; ResNet-34 has
    ``layer3.5``)."""
    if any(k.startswith(f"{prefix}layer1.0.conv3.") for k in encoder_keys):
        return 50
    return 34 if any(k.startswith(f"{prefix}layer3.5.") for k in encoder_keys) else 18


def decoder_scales(decoder_state: dict[str, Tensor]) -> list[int]:
    """The scales a Monodepth2 decoder predicts, in its module order: its dispconvs (index ≥ 10) read
    ``num_ch_dec[s]`` channels."""
    scales = []
    index = 10  # upconv(4,0) … upconv(0,1) come first
    while f"decoder.{index}.conv.weight" in decoder_state:
        scales.append(NUM_CH_DEC.index(int(decoder_state[f"decoder.{index}.conv.weight"].shape[1])))
        index += 1
    if not scales:
        raise ConfigError("the depth decoder has no dispconv layers (decoder.10.conv.weight …): not a Monodepth2 "
                          "depth decoder")
    return scales


def load_depth(encoder: dict[str, Tensor], decoder: dict[str, Tensor], source: Any) -> tuple[DepthNet, int, list[int]]:
    """A strict load into our DepthNet: every key and shape must match (the error lists the mismatches)."""
    num_layers = resnet_depth(list(encoder))
    scales = decoder_scales(decoder)
    net = DepthNet(num_layers, scales=scales)
    try:
        load_state_dict_checked(net.encoder, encoder, source)
        load_state_dict_checked(net.decoder, decoder, source)
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    return net, num_layers, scales


def _tensors(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    return ({k: v for k, v in state.items() if isinstance(v, Tensor)},
            {k: v for k, v in state.items() if not isinstance(v, Tensor)})


# ------------------------------------------------------------------------------------------ Monodepth2 folders


def read_md2_folder(src: Path) -> ImportedWeights:
    """``encoder.pth`` + ``depth.pth`` (+ ``pose_encoder.pth`` + ``pose.pth``) from a Monodepth2-style folder."""
    if not src.is_dir():
        raise ConfigError(f"{src}: a Monodepth2-style release is a folder holding {' + '.join(MD2_FOLDER_FILES)}")
    missing = [name for name in MD2_FOLDER_FILES if not (src / name).is_file()]
    if missing:
        raise ConfigError(f"{src} lacks {', '.join(missing)} (a Monodepth2-style folder holds "
                          f"{', '.join(MD2_FOLDER_FILES + MD2_POSE_FILES)})")
    encoder, info = _tensors(strip_module(read_state_dict(src / "encoder.pth", "encoder")))
    decoder, _ = _tensors(strip_module(read_state_dict(src / "depth.pth", "depth decoder")))
    net, num_layers, scales = load_depth(encoder, decoder, src)
    notes = []
    pose_state = None
    if all((src / name).is_file() for name in MD2_POSE_FILES):
        pose_encoder, _ = _tensors(strip_module(read_state_dict(src / "pose_encoder.pth", "pose encoder")))
        pose_decoder, _ = _tensors(strip_module(read_state_dict(src / "pose.pth", "pose decoder")))
        pose = PoseNet(resnet_depth(list(pose_encoder)))
        try:
            load_state_dict_checked(pose.encoder, pose_encoder, src)
            load_state_dict_checked(pose.decoder, pose_decoder, src)
        except ValueError as err:
            raise ConfigError(" ".join(str(err).split())) from None
        pose_state = {k: v.detach().clone() for k, v in pose.state_dict().items()}
    else:
        notes.append("no pose_encoder.pth + pose.pth: depth network only (enough for eval, predict and as a teacher)")
    if info.get("use_stereo"):
        notes.append("trained with stereo (use_stereo=True): its depth is metric up to the stereo baseline scale")
    height, width = info.get("height"), info.get("width")
    stereo = bool(info.get("use_stereo"))
    return ImportedWeights(scale="metric" if stereo else "up-to-scale",
                           trained_on="as released (the files do not name their data; Monodepth2's are KITTI)",
                           depth={k: v.detach().clone() for k, v in net.state_dict().items()}, pose=pose_state,
                           num_layers=num_layers, scales=scales,
                           height=int(height) if height else None, width=int(width) if width else None,
                           input_normalization={"mode": "monodepth2", "mean": MD2_INPUT_MEAN, "std": MD2_INPUT_STD},
                           notes=notes)


# ------------------------------------------------------------------------------------------ Lightning (md4all family)


def _cfg_get(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


#: md4all dataset name → (our dataset, our protocol).
MD4ALL_DATASETS = {"nuscenes": ("nuscenes", "nuscenes_md4all"), "robotcar": ("robotcar", "robotcar_md4all")}


def md4all_normalization(cfg: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """md4all's ``NormalizeDynamic`` (DATASET.AUGMENTATION.NORMALIZE) mapped onto our fixed MD2 normalisation.

    ``Dataset`` with mean 0.45 / std 0.225 (md4all's default) is exactly ours. ``Daytime`` (md4allDDa,
    ACDepth) normalises day and night frames with their own statistics: our nuScenes/RobotCar loaders do
    that with ``data.options.daytime_norm=true`` (an exact input remap), so it is switched on; other inputs
    (``predict`` on arbitrary images) get the plain MD2 normalisation — the day statistics are close.
    """
    norm = _cfg_get(cfg, "DATASET.AUGMENTATION.NORMALIZE", {}) or {}
    mode = str(norm.get("MODE", "Dataset"))
    record: dict[str, Any] = {"mode": mode}
    overrides: list[str] = []
    if mode == "Dataset":
        mean = float(_cfg_get(norm, "DATASET.MEAN", MD2_INPUT_MEAN))
        std = float(_cfg_get(norm, "DATASET.STD", MD2_INPUT_STD))
        record.update(mean=mean, std=std)
        if (mean, std) != (MD2_INPUT_MEAN, MD2_INPUT_STD):
            notes.append(f"dataset normalisation mean {mean} / std {std} differs from the MD2 0.45 / 0.225 this "
                         "network applies: feed images remapped by 0.45 + 0.225·(x − mean)/std for identical outputs")
    elif mode == "Daytime":
        record.update(day={"mean": float(_cfg_get(norm, "DAYTIME.DAY.MEAN", 0.0)),
                           "std": float(_cfg_get(norm, "DAYTIME.DAY.STD", 1.0))},
                      night={"mean": float(_cfg_get(norm, "DAYTIME.NIGHT.MEAN", 0.0)),
                             "std": float(_cfg_get(norm, "DAYTIME.NIGHT.STD", 1.0))})
        overrides.append("data.options.daytime_norm=true")
        notes.append("daytime normalisation: exact on nuScenes/RobotCar through data.options.daytime_norm=true; "
                     "predict on other images applies the MD2 0.45/0.225 normalisation instead")
    else:
        notes.append(f"input normalisation mode {mode!r} (per-image or none) is not reproduced: this network applies "
                     "the MD2 0.45/0.225 normalisation")
    return record, overrides


def read_md4all_ckpt(src: Path, project: str = "md4all") -> ImportedWeights:
    """A md4all / ACDepth Lightning ``.ckpt``: ``state_dict['depth_model.…']`` + ``hyper_parameters['cfg']``."""
    if src.is_dir():
        candidates = sorted(src.glob("*.ckpt"))
        if len(candidates) != 1:
            raise ConfigError(f"{src}: give the .ckpt file itself ({len(candidates)} .ckpt files in that folder)")
        src = candidates[0]
    try:
        data = load_lightning_checkpoint(src)
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise ConfigError(f"{src} has no 'state_dict': not a PyTorch Lightning checkpoint")
    hyper = to_plain(data.get("hyper_parameters") or {})
    cfg = hyper.get("cfg") if isinstance(hyper.get("cfg"), dict) else {}
    depth = strip_prefix(state, "depth_model.")
    if not depth:
        prefixes = sorted({k.split(".")[0] for k in state})
        raise ConfigError(f"{src}: no 'depth_model.' weights in its state_dict (top-level modules: {prefixes}); "
                          f"not a {project} checkpoint")
    net, num_layers, scales = load_depth(strip_prefix(depth, "encoder."), strip_prefix(depth, "decoder."), src)
    notes = ["pose network not imported: md4all's PoseNet predicts Euler angles + translation in another order "
             "(MODEL.POSE.ROTATION_MODE); depth only (enough for eval, predict and as a teacher)"]
    version = str(_cfg_get(cfg, "MODEL.DEPTH.ENCODER.VERSION", f"resnet-{num_layers}"))
    if version.lower() != f"resnet-{num_layers}":
        notes.append(f"config says encoder {version}, weights are ResNet-{num_layers} (weights win)")
    normalization, overrides = md4all_normalization(cfg, notes)
    name = str(_cfg_get(cfg, "DATASET.NAME", "")).lower()
    weathers = [str(w) for w in _cfg_get(cfg, "DATASET.WEATHER.TRAIN", []) or []]
    if name in MD4ALL_DATASETS:
        dataset, protocol = MD4ALL_DATASETS[name]
        overrides += [f"data.dataset={dataset}", f"eval.protocol={protocol}"]
        if weathers:
            overrides.append(f"data.train_conditions=[{','.join(weathers)}]")
    elif "data.options.daytime_norm=true" in overrides:
        overrides.remove("data.options.daytime_norm=true")
    # md4all's velocity loss (ego speed) or distillation from such a teacher (SUPERVISED) fixes metric scale.
    metric = any(float(_cfg_get(cfg, key, 0.0) or 0.0) > 0
                 for key in ("LOSS.VELOCITY_WEIGHT", "LOSS.SUPERVISED.WEIGHT"))
    return ImportedWeights(
        depth={k: v.detach().clone() for k, v in net.state_dict().items()}, pose=None, num_layers=num_layers,
        scales=scales, height=_cfg_get(cfg, "DATASET.AUGMENTATION.RESIZE.HEIGHT"),
        width=_cfg_get(cfg, "DATASET.AUGMENTATION.RESIZE.WIDTH"),
        min_depth=float(_cfg_get(cfg, "MODEL.DEPTH.MIN_DEPTH", 0.1)),
        max_depth=float(_cfg_get(cfg, "MODEL.DEPTH.MAX_DEPTH", 80.0)),
        overrides=overrides, input_normalization=normalization, notes=notes, source_config=cfg or None,
        scale="metric" if metric else "up-to-scale",
        trained_on=f"{name or '?'} ({', '.join(weathers) or 'conditions not stated'})")


# ------------------------------------------------------------------------------------------ registry


LAYOUTS: dict[str, Layout] = {
    "monodepth2": Layout("monodepth2", "Monodepth2 (Godard et al., ICCV 2019)", "github.com/nianticlabs/monodepth2",
                         MD2_LICENCE, read_md2_folder),
    "robust-depth": Layout("robust-depth", "Robust-Depth (Saunders et al., ICCV 2023; Monodepth2 folder layout)",
                           "github.com/kieran514/Robust-Depth",
                           "see the Robust-Depth repository's LICENSE; its networks and training code derive from "
                           "Monodepth2, whose licence is non-commercial (Niantic)", read_md2_folder),
    "weatherdepth": Layout("weatherdepth", "WeatherDepth (Wang et al., ICRA 2024; net_type=monodepth2 weights)",
                           "github.com/wangjiyuan9/WeatherDepth",
                           "repository MIT; its Monodepth2 networks carry the Monodepth2 licence: non-commercial use "
                           "only", read_md2_folder),
    "md4all": Layout("md4all", "md4all (Gasperini et al., ICCV 2023)", "github.com/md4all/md4all", MD4ALL_LICENCE,
                     read_md4all_ckpt, default_size=(320, 576)),
    "acdepth": Layout("acdepth", "ACDepth (Jiang et al., IJCAI 2025; md4all's Lightning layout)",
                      "github.com/msscao/ACDepth",
                      "no licence file in the repository (all rights reserved); built on md4all (CC BY-NC-SA 4.0, "
                      "non-commercial)", lambda src: read_md4all_ckpt(src, "ACDepth"), default_size=(320, 576)),
}


def read_layout(layout: str, src: str | Path) -> ImportedWeights:
    """Read ``src`` as ``layout`` (a name in :data:`LAYOUTS`) into our networks' state dicts."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown weights layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    return LAYOUTS[layout].read(src)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(src: Path) -> dict[str, str]:
    """name → SHA-256 of the files an import read (a folder's .pth/.ckpt files, or the file itself)."""
    files = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.suffix in (".pth", ".ckpt"))
    return {p.name: _sha256(p) for p in files}


def import_weights(layout: str, src: str | Path, out: str | Path, overrides: list[str] | None = None) -> Path:
    """Import ``src`` into run directory ``out``; returns the checkpoint path (``out/checkpoints/last.pt``).

    The stored config is the ``monodepth2`` recipe with the source's architecture, resolution and depth range,
    then ``overrides``. ``out/IMPORT.json`` records source, hashes, layout, licence and notes; the same
    record is stored in the checkpoint under ``imported``.
    """
    spec = LAYOUTS.get(layout)
    src, out = Path(src), Path(out)
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.pt")):
        raise ConfigError(f"{out} already holds checkpoints; import into a new --out directory")
    imported = read_layout(layout, src)
    height = imported.height or spec.default_size[0]
    width = imported.width or spec.default_size[1]
    cfg = load_config("monodepth2", [
        f"model.num_layers={imported.num_layers}", f"model.scales={imported.scales}",
        f"model.min_depth={imported.min_depth}", f"model.max_depth={imported.max_depth}",
        f"data.height={height}", f"data.width={width}", f"train.name={out.name}",
        *imported.overrides, *(overrides or [])])
    record = {
        "layout": spec.name, "project": spec.project, "url": spec.url, "licence": spec.licence,
        "source": str(src.resolve()), "files": source_files(src),
        "input_normalization": imported.input_normalization, "notes": imported.notes,
        "scale": imported.scale, "trained_on": imported.trained_on,
        "networks": ["depth", *(["pose"] if imported.pose is not None else [])],
    }
    if imported.source_config:
        record["source_config"] = imported.source_config
    models = {"depth": imported.depth, **({"pose": imported.pose} if imported.pose is not None else {})}
    ckpt = save_checkpoint(out / "checkpoints" / "last.pt",
                           {"config": to_dict(cfg), "models": models, "step": 0, "imported": _jsonable(record)})
    (out / "IMPORT.json").write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    return ckpt


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (a source config may hold tuples or None)."""
    return json.loads(json.dumps(to_plain(value), default=str))


def imported_summary(weights: ImportedWeights) -> dict[str, Any]:
    """The non-tensor fields of an import (for logs and tests)."""
    data = asdict(weights)
    data.pop("depth")
    data.pop("pose")
    return data
