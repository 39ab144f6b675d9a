"""Configuration at the bottom of the package: the fixed sections, recipe files, merging and :class:`ConfigError`.

A run is configured by one tree with fixed sections (``data``, ``model``, ``optim``, ``augment``, ``degrade``,
``train``, ``eval``), defined here, and two registry-built sections (``losses.<term>``, ``providers.<name>``)
that the components above this layer declare. This module imports nothing of the package above it: the full
configuration — fixed sections + the component sections — is assembled one layer above the components, in
:mod:`robustdepth.configure` (``load_config``, ``config_from_dict``, ``apply_overrides``, ``validate``). What
lower layers need from a stored config (a frozen model's ``model`` and ``data`` sections) is
:func:`fixed_config_from_dict`.

A recipe YAML may name a ``base`` recipe (md4all-style short overrides); ``key=value`` overrides
from the command line are applied last. Every key is checked against the schema: an unknown key is
an error that lists the valid keys at that level, so typos never silently do nothing.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

# Recipes ship inside the package (robustdepth/recipes/); a checkout without that folder yet uses ./recipes.
_PACKAGE_RECIPES = Path(__file__).resolve().parent / "recipes"
RECIPES_DIR = _PACKAGE_RECIPES if _PACKAGE_RECIPES.is_dir() else Path(__file__).resolve().parent.parent / "recipes"


class ConfigError(ValueError):
    """A recipe or override that does not fit the schema."""


@dataclass
class DataConfig:
    """Where frames come from and how they are shaped."""

    dataset: str = "world"  # registered dataset: world | folder (more in robustdepth.data.DATASETS)
    root: str = "data/world/small"  # relative paths resolve against the working directory
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    height: int = 96  # training resolution; multiples of 32, >= 64
    width: int = 320
    frame_ids: list[int] = field(default_factory=lambda: [0, -1, 1])  # target first, then sources
    train_conditions: list[str] = field(default_factory=lambda: ["clear"])  # md4all trains on day-clear
    eval_conditions: list[str] = field(default_factory=list)  # empty = every condition on disk
    # Folder dataset: 3x3 K in pixels of the stored images, as [fx, fy, cx, cy] or a file path.
    intrinsics: Any = None
    num_workers: int = 2
    load_depth_gt: bool = False  # also load GT depth into training batches (eval always loads it)
    # Keep each worker's resized frames in memory (byte-identical samples; skips decode + resize after
    # the first epoch). Budget in MiB per loader process; 0 = off.
    cache_frames_mb: int = 1024
    options: dict[str, Any] = field(default_factory=dict)  # dataset-specific, validated by the dataset


@dataclass
class ModelConfig:
    """Depth and pose networks (Monodepth2 layout)."""

    num_layers: int = 18  # ResNet-18 or 50 depth encoder
    pose_num_layers: int = 18
    pretrained_path: Any = None  # local torchvision ResNet ImageNet file (.pth / .safetensors)
    scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    min_depth: float = 0.1  # disparity <-> depth range, as Monodepth2
    max_depth: float = 100.0
    init_checkpoint: Any = None  # start from a robustdepth checkpoint (students start from the teacher)


@dataclass
class OptimConfig:
    """Adam + step decay (Monodepth2 defaults)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 12
    epochs: int = 20
    max_steps: int = 0  # > 0 overrides epochs
    decay_every_epochs: float = 15.0  # StepLR(step_size=15, gamma=0.1) in Monodepth2
    gamma: float = 0.1
    grad_clip: float = 0.0  # 0 = off
    # torch's fused Adam kernel (one pass over all parameters; its speed-up: docs/results/speed.md).
    # Off by default: it rounds differently from the default path (~1e-8 per step),
    # so a run's config — hence its resume and its benchmark cache — must not change under it.
    fused: bool = False


@dataclass
class AugmentConfig:
    """Training augmentation of the network input (losses see the un-jittered frames)."""

    color_jitter_p: float = 0.5  # Monodepth2: 0.5; md4all: 1.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1  # md4all: 0.05
    flip_p: float = 0.5
    noise_p: float = 0.0  # md4all-DD: 0.5
    noise_mean: float = 0.005  # md4all adds 0.005 + 0.045 * N(0, 1)
    noise_std: float = 0.045


@dataclass
class DegradeRuleConfig:
    """Apply ``condition`` with probability ``p``; severity uniform in ``severity`` ([lo, hi] in [0, 1])."""

    condition: str = "night"
    p: float = 0.5
    severity: list[float] = field(default_factory=lambda: [1.0, 1.0])


@dataclass
class DegradeConfig:
    """Supply of pixel-aligned degraded copies of the target frame (the batch's ``degraded`` slot)."""

    mode: str = "none"  # none | online (translated in the data pipeline) | offline (read a written set)
    # Ordered rules; a later rule that fires overwrites an earlier one (md4all: rain 0.5, then night 0.33).
    rules: list[DegradeRuleConfig] = field(default_factory=list)
    offline_root: Any = None  # written by 'robustdepth degrade write'
    # md4all-style translated folders read by mode=offline, per condition: the translated copy of a frame is
    # FOLDER/<the frame's image path relative to data.root> (md4all's ForkGAN sets: {night: …, rain: …}).
    translated_folders: dict[str, Any] = field(default_factory=dict)
    every_n_steps: int = 1  # use degraded inputs only every S steps (SEC-Depth's S)


@dataclass
class TrainConfig:
    """Run mechanics: device, precision, logging, checkpoints, failure handling."""

    name: str = "run"
    run_dir: Any = None  # default runs/<name>
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 (autocast on the networks; losses stay fp32)
    channels_last: bool = False
    compile: bool = False  # torch.compile the networks (pays off on long runs)
    compile_loss: bool = False  # also torch.compile the photometric error (fused SSIM + L1; long runs)
    log_every: int = 25
    image_every: int = 250
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops
    # Validation on data.val_split under eval.protocol every val_every steps (0 = off), logged per condition
    # (robustdepth/training/validation.py); keep_best writes checkpoints/best.pt by best_metric:
    # auto (adverse-mean AbsRel when the split has adverse conditions, else all/abs_rel) or ROW/METRIC.
    val_every: int = 0
    val_max_frames: int = 0  # 0 = the whole validation split
    keep_best: bool = False
    best_metric: str = "auto"
    progress: bool = True


@dataclass
class EvalConfig:
    """Evaluation protocol (robustdepth.evaluation.PROTOCOLS) and inference options."""

    protocol: str = "world"
    split: str = "test"
    batch_size: int = 4
    post_process: bool = False  # Monodepth2 flip post-processing
    max_frames: int = 0  # 0 = all


_FIXED_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "augment": AugmentConfig,
    "degrade": DegradeConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def registry_section(registry: dict[str, type]) -> DictConfig:
    """A struct config with one typed sub-section per registered component's Config dataclass."""
    return OmegaConf.create({name: OmegaConf.structured(cls.Config) for name, cls in registry.items()})


def fixed_schema(sections: dict[str, DictConfig] | None = None) -> DictConfig:
    """The fixed sections' defaults (every key) plus ``sections`` (name → section, e.g. the component
    registries' sections that :func:`robustdepth.configure.schema` adds), as one struct config."""
    tree: dict[str, Any] = {name: OmegaConf.structured(cls) for name, cls in _FIXED_SECTIONS.items()}
    tree.update(sections or {})
    cfg = OmegaConf.create(tree)
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.data.options, False)  # free-form: each dataset validates its own options
    OmegaConf.set_struct(cfg.degrade.translated_folders, False)  # condition → folder, checked by the supply
    return cfg


def resolve_recipe_path(recipe: str | Path) -> Path:
    """A recipe is a path, or a name in the project's ``recipes/`` folder."""
    path = Path(recipe)
    if path.is_file():
        return path
    for candidate in (RECIPES_DIR / f"{recipe}.yaml", RECIPES_DIR / str(recipe)):
        if candidate.is_file():
            return candidate
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []
    raise ConfigError(f"recipe {recipe!r} not found (not a file, not in {RECIPES_DIR}); known recipes: {names}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _recipe_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The recipe and its ``base`` recipes, most basic first."""
    if path.resolve() in seen:
        raise ConfigError(f"recipe base cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    chain: list[tuple[Path, dict[str, Any]]] = []
    if base is not None:
        base_path = path.parent / f"{base}.yaml" if not str(base).endswith(".yaml") else path.parent / base
        if not base_path.is_file():
            base_path = resolve_recipe_path(base)
        chain = _recipe_chain(base_path, (*seen, path.resolve()))
    chain.append((path, data))
    return chain


def _valid_keys_message(cfg: DictConfig, full_key: str) -> str:
    parent_key = full_key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    keys = sorted(node.keys()) if isinstance(node, DictConfig) else []
    where = f"'{parent_key}'" if parent_key else "the top level"
    return f"unknown config key '{full_key}'; valid keys under {where}: {', '.join(map(str, keys))}"


def _merge(cfg: DictConfig, update: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, update)
    except ConfigKeyError as err:
        raise ConfigError(f"{source}: {_valid_keys_message(cfg, err.full_key)}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None


_OVERRIDE = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$")


def parse_overrides(overrides: list[str]) -> list[str]:
    """Check ``key=value`` syntax early with a clear message."""
    for item in overrides:
        if not _OVERRIDE.match(item):
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
    return list(overrides)


def recipe_parts(recipe: str | Path) -> list[str | Path]:
    """``"acdepth+sec"`` → ``["acdepth", "sec"]``: a recipe followed by overlays merged left to right."""
    if isinstance(recipe, Path) or Path(recipe).is_file():
        return [recipe]
    return [part for part in str(recipe).split("+") if part]


def merge_recipe(cfg: DictConfig, recipe: str | Path | None = None, overrides: list[str] | None = None,
                 ) -> DictConfig:
    """``cfg`` <- recipe chain (base first) <- overlays (``a+b``) <- ``key=value`` overrides; not validated."""
    for part in recipe_parts(recipe) if recipe is not None else []:
        for path, data in _recipe_chain(resolve_recipe_path(part)):
            cfg = _merge(cfg, data, f"recipe {path}")
    if overrides:
        cfg = _merge(cfg, _dotlist(overrides), "command-line override")
    return cfg


def _dotlist(overrides: list[str]) -> DictConfig:
    """``key=value`` overrides as a config, one clear line per malformed value (YAML syntax, bad ``${…}``)."""
    parsed = []
    for item in parse_overrides(overrides):
        try:
            parsed.append(OmegaConf.from_dotlist([item]))
        except (OmegaConfBaseException, yaml.YAMLError, ValueError) as err:
            detail = " ".join(str(getattr(err, "msg", None) or err).split())
            raise ConfigError(f"override {item!r} has a value that does not parse: {detail}") from None
    return OmegaConf.merge(*parsed) if parsed else OmegaConf.create()


def _resolve_all(cfg: DictConfig) -> None:
    """Resolve every ``${…}`` interpolation now, so a broken one is a config error, not a crash later."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        detail = (str(err).strip().splitlines() or ["?"])[0]
        raise ConfigError(f"config key {key or '?'}: cannot resolve its value: {detail}") from None


def _known_only(data: Any, node: Any, prefix: str, dropped: list[str]) -> Any:
    """``data`` without the keys the schema ``node`` does not have (free-form dicts kept whole)."""
    if not isinstance(data, dict) or not isinstance(node, DictConfig) or not node._get_flag("struct"):
        return data
    kept = {}
    for key, value in data.items():
        if key in node:
            kept[key] = _known_only(value, node[key], f"{prefix}{key}.", dropped)
        else:
            dropped.append(f"{prefix}{key}")
    return kept


def merge_stored(base: DictConfig, data: dict[str, Any], strict: bool = True) -> DictConfig:
    """``data`` (e.g. a config stored in a checkpoint) merged onto the schema ``base``; not validated.

    ``strict=False`` (inference, frozen teachers) drops keys that ``base`` does not have, with a warning naming
    them, so older checkpoints keep loading; resuming training stays strict.
    """
    if not strict:
        dropped: list[str] = []
        data = _known_only(data, base, "", dropped)
        if dropped:
            warnings.warn(f"stored config keys unknown to this version were ignored: {', '.join(dropped)}",
                          stacklevel=3)
    return _merge(base, data, "stored config")


def fixed_config_from_dict(data: dict[str, Any]) -> DictConfig:
    """The fixed sections of a stored config (its ``model``, ``data``, … ; component sections left out, keys this
    version does not have dropped silently), validated: what a frozen model or a loader below the components
    needs from a checkpoint."""
    dropped: list[str] = []
    base = fixed_schema()
    cfg = _merge(base, _known_only({k: v for k, v in data.items() if k in _FIXED_SECTIONS}, base, "", dropped),
                 "stored config")
    validate_fixed(cfg)
    return cfg


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def validate_fixed(cfg: DictConfig) -> None:
    """Cross-field checks of the fixed sections that the types alone cannot express (the components' own
    checks are added by :func:`robustdepth.configure.validate`)."""
    _resolve_all(cfg)
    data, model = cfg.data, cfg.model
    for name in ("height", "width"):
        value = data[name]
        if value < 64 or value % 32:
            raise ConfigError(f"data.{name}={value}: must be a multiple of 32 and >= 64 (the encoder downsamples 32x)")
    if not data.frame_ids or data.frame_ids[0] != 0:
        raise ConfigError(f"data.frame_ids={list(data.frame_ids)}: the target frame 0 must come first")
    if not 0 < model.min_depth < model.max_depth:
        raise ConfigError(f"model.min_depth/max_depth = {model.min_depth}/{model.max_depth}: need 0 < min < max")
    if sorted(model.scales) != list(range(len(model.scales))):
        raise ConfigError(f"model.scales={list(model.scales)}: must be 0..n-1 (e.g. [0, 1, 2, 3])")
    if cfg.train.precision not in ("fp32", "bf16"):
        raise ConfigError(f"train.precision={cfg.train.precision!r}: use fp32 or bf16")
    if cfg.degrade.mode not in ("none", "online", "offline"):
        raise ConfigError(f"degrade.mode={cfg.degrade.mode!r}: use none, online or offline")
    if cfg.degrade.mode != "none" and not cfg.degrade.rules:
        raise ConfigError(f"degrade.mode={cfg.degrade.mode!r} needs degrade.rules, "
                          "e.g. [{condition: night, p: 0.5}]")
    uncovered = [r.condition for r in cfg.degrade.rules if r.condition not in cfg.degrade.translated_folders]
    if cfg.degrade.mode == "offline" and uncovered and not cfg.degrade.offline_root:
        raise ConfigError(f"degrade.mode=offline: condition(s) {uncovered} need degrade.offline_root (written by "
                          "'robustdepth degrade write') or degrade.translated_folders")
    for i, rule in enumerate(cfg.degrade.rules):
        if not 0.0 <= float(rule.p) <= 1.0:
            raise ConfigError(f"degrade.rules[{i}].p={rule.p} ({rule.condition}): a probability, must lie in [0, 1]")
        severity = list(rule.severity)
        if len(severity) != 2 or not 0.0 <= float(severity[0]) <= float(severity[1]) <= 1.0:
            raise ConfigError(f"degrade.rules[{i}].severity={severity} ({rule.condition}): give [lo, hi] with "
                              "0 <= lo <= hi <= 1")
    if cfg.degrade.every_n_steps < 1:
        raise ConfigError(f"degrade.every_n_steps={cfg.degrade.every_n_steps}: must be >= 1")
    if cfg.optim.batch_size < 1:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size}: must be >= 1")
    _validate_run_mechanics(cfg)


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _validate_run_mechanics(cfg: DictConfig) -> None:
    """Numbers the trainer divides by, counts and rates: each must be in range, or one line naming the key."""
    optim, train = cfg.optim, cfg.train
    checks: list[tuple[str, Any, bool, str]] = [
        ("optim.lr", optim.lr, math.isfinite(optim.lr) and optim.lr > 0, "a finite number > 0"),
        ("optim.weight_decay", optim.weight_decay, math.isfinite(optim.weight_decay) and optim.weight_decay >= 0,
         "a finite number >= 0"),
        ("optim.grad_clip", optim.grad_clip, math.isfinite(optim.grad_clip) and optim.grad_clip >= 0,
         "a finite number >= 0 (0 = off)"),
        ("optim.gamma", optim.gamma, math.isfinite(optim.gamma) and optim.gamma > 0, "a finite number > 0"),
        ("optim.decay_every_epochs", optim.decay_every_epochs,
         math.isfinite(optim.decay_every_epochs) and optim.decay_every_epochs >= 0, "a finite number >= 0 (0 = off)"),
        ("optim.max_steps", optim.max_steps, optim.max_steps >= 0, ">= 0 (0 = use optim.epochs)"),
        ("optim.epochs", optim.epochs, optim.epochs >= 1 or optim.max_steps > 0, ">= 1 (or set optim.max_steps)"),
        ("train.log_every", train.log_every, train.log_every >= 1, ">= 1"),
        ("train.image_every", train.image_every, train.image_every >= 1, ">= 1"),
        ("train.ckpt_every", train.ckpt_every, train.ckpt_every >= 1, ">= 1"),
        ("train.keep_checkpoints", train.keep_checkpoints, train.keep_checkpoints >= 0, ">= 0 (0 = keep all)"),
        ("train.max_bad_steps", train.max_bad_steps, train.max_bad_steps >= 1, ">= 1"),
        ("data.num_workers", cfg.data.num_workers, cfg.data.num_workers >= 0, ">= 0"),
        ("data.cache_frames_mb", cfg.data.cache_frames_mb, cfg.data.cache_frames_mb >= 0, ">= 0 (0 = off)"),
        ("eval.batch_size", cfg.eval.batch_size, cfg.eval.batch_size >= 1, ">= 1"),
        ("eval.max_frames", cfg.eval.max_frames, cfg.eval.max_frames >= 0, ">= 0 (0 = all)"),
        ("train.device", train.device, bool(_DEVICE.match(str(train.device))), "auto, cpu, cuda, cuda:N or mps"),
    ]
    for key, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r}: must be {expected}")



def merge_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``key=value`` overrides on an existing config (e.g. one stored in a checkpoint); not validated."""
    if not overrides:
        return cfg
    update = _dotlist(overrides)
    new_dataset = OmegaConf.select(update, "data.dataset")
    if new_dataset is not None and new_dataset != cfg.data.dataset:
        # data.options belong to the stored dataset (each dataset rejects foreign keys): a checkpoint trained on
        # one dataset and evaluated on another starts from empty options; the overrides' own options still apply.
        cfg = cfg.copy()
        cfg.data.options = {}
    return _merge(cfg, update, "command-line override")
