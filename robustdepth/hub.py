"""Models in the Hugging Face Hub layout: ``save_pretrained`` / ``from_pretrained`` and a model card.

    robustdepth export runs/acdepth/student --hf hub/acdepth      # config.json + model.safetensors + README.md
    model = robustdepth.hub.from_pretrained("hub/acdepth")        # a DepthModel, bit-exact weights
    out = robustdepth.hub.depth_estimation(model, "frame.png")    # {"predicted_depth", "depth"} like transformers

A Hub directory holds no pickle: ``model.safetensors`` (the depth network's tensors) and ``config.json``
(the resolved robustdepth config, architecture, input size, depth range, whether depth is metric or up to
scale, and the provenance of imported weights). ``README.md`` is a model card generated from the
checkpoint's config and the evaluation results files found next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from robustdepth.checkpoint import CheckpointError, load_checkpoint, load_weights

__all__ = ["HUB_FORMAT", "depth_estimation", "from_pretrained", "model_card", "save_pretrained"]

HUB_FORMAT = "robustdepth-hub/1"
CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"
ADVERSE = ("night", "rain", "fog", "snow")
CARD_METRICS = ("abs_rel", "sq_rel", "rmse", "a1")

#: Licences of the pretrained priors a recipe may use, keyed by (provider, setting that selects the prior).
PRIOR_LICENCES = {
    ("depth_prior", "source", "depth_anything"): "Depth Anything V2 (Small: Apache-2.0; Base/Large: CC BY-NC 4.0)",
    ("masks", "method", "sam"): "Segment Anything (SAM): Apache-2.0",
}
#: Pretrained ImageNet encoders (model.pretrained_path): torchvision's ResNet weights, BSD-3-Clause.
IMAGENET_LICENCE = "torchvision ImageNet ResNet weights: BSD-3-Clause (ImageNet terms for the data)"


def output_kind(config: dict[str, Any], imported: dict[str, Any] | None = None) -> str:
    """``metric`` when the training signal fixes the scale (velocity loss on ego speed), else ``up-to-scale``."""
    if imported and imported.get("scale") in ("metric", "up-to-scale"):
        return imported["scale"]
    velocity = config.get("losses", {}).get("velocity", {})
    if float(velocity.get("weight", 0.0) or 0.0) > 0:
        return "metric"
    if imported and any("stereo" in note for note in imported.get("notes", [])):
        return "metric"
    return "up-to-scale"


def results_files(checkpoint: Path) -> list[Path]:
    """``results*.json`` of a checkpoint: in its folder, its run directory, and the run directory's parent
    (where ``robustdepth eval RUN`` writes by default)."""
    ckpt = checkpoint if checkpoint.is_file() else checkpoint / "checkpoints" / "last.pt"
    folders = [ckpt.parent, ckpt.parent.parent] if ckpt.parent.name == "checkpoints" else [ckpt.parent]
    found: list[Path] = []
    for folder in folders:
        found += [p for p in sorted(folder.glob("results*.json")) if p not in found]
    return found


def _read_results(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    from robustdepth.evaluation import load_results

    out = []
    for path in paths:
        try:
            out.append((path.name, load_results(path)))
        except ValueError:
            continue  # another JSON that happens to be called results*.json
    return out


def _results_table(name: str, results: dict[str, Any]) -> list[str]:
    conditions = [c for c in results if isinstance(results[c], dict) and "abs_rel" in results[c]]
    protocol = results.get("protocol", {}).get("name", name)
    lines = [f"### Protocol `{protocol}` ({name})", "", "| condition | " + " | ".join(CARD_METRICS) + " |",
             "|---" * (len(CARD_METRICS) + 1) + "|"]
    for condition in conditions:
        row = results[condition]
        lines.append(f"| {condition} | " + " | ".join(f"{row[m]:.3f}" for m in CARD_METRICS if m in row) + " |")
    return [*lines, ""]


def _priors(config: dict[str, Any]) -> list[str]:
    """Licence lines for every pretrained prior the config switches on (teachers are the project's own models)."""
    providers = config.get("providers", {})
    used = []
    for (provider, key, value), terms in PRIOR_LICENCES.items():
        entry = providers.get(provider, {})
        if isinstance(entry, dict) and entry.get("enabled") and entry.get(key) == value:
            used.append(f"- `providers.{provider}` ({key}={value}): {terms}")
    if config.get("model", {}).get("pretrained_path"):
        used.append(f"- `model.pretrained_path`: {IMAGENET_LICENCE}")
    teacher = providers.get("teacher", {})
    if isinstance(teacher, dict) and teacher.get("enabled"):
        used.append("- `providers.teacher`: a frozen robustdepth model (its own card states its terms)")
    return used


def model_card(config: dict[str, Any], hub_config: dict[str, Any], results: list[tuple[str, dict[str, Any]]]) -> str:
    """The README.md model card: what the model is, what it was trained on, how it scores, on what terms."""
    data, model = config.get("data", {}), config.get("model", {})
    imported = hub_config.get("imported")
    world = data.get("dataset") == "world"
    source = (f"embedded synthetic world (`{data.get('root')}`)" if world
              else f"real: `{data.get('dataset')}` at `{data.get('root')}`")
    run = f"`{config.get('train', {}).get('name', '?')}`"
    conditions = ", ".join(data.get("train_conditions", [])) or "?"
    if imported:
        run = f"imported ({imported.get('layout')}), not trained here"
        source = f"{imported.get('trained_on') or 'as released'}; configured for `{data.get('dataset')}`"
        conditions = "see the source"
    height, width = hub_config["input_size"]
    lines = ["---", "library_name: robustdepth", "pipeline_tag: depth-estimation",
             "tags: [depth-estimation, monocular-depth, self-supervised, adverse-weather]", "---", "",
             f"# {config.get('train', {}).get('name', 'robustdepth model')}", "",
             "Monocular depth network (ResNet encoder + Monodepth2 decoder) from robustdepth.", "",
             "| | |", "|---|---|",
             f"| recipe / run | {run} |",
             f"| training data | {source} |",
             f"| training conditions | {conditions} |",
             f"| input size | {height}×{width} (H×W; other sizes are resized) |",
             f"| output | depth in metres, **{hub_config['output']}**"
             f"{' (median-scale against GT to evaluate)' if hub_config['output'] == 'up-to-scale' else ''}; "
             f"range {model.get('min_depth')}–{model.get('max_depth')} m |",
             f"| encoder | ResNet-{model.get('num_layers')} |",
             f"| evaluation protocol | `{config.get('eval', {}).get('protocol', '?')}` |", ""]
    if imported:
        lines += ["## Origin and licence", "",
                  f"Imported from **{imported.get('project')}** ({imported.get('url')}), layout "
                  f"`{imported.get('layout')}`.", "", f"**Licence of these weights:** {imported.get('licence')}", ""]
        lines += [f"- {note}" for note in imported.get("notes", [])] + [""]
    lines += ["## Results", ""]
    if results:
        for name, res in results:
            lines += _results_table(name, res)
    else:
        lines += ["No results file was found next to the checkpoint; run `robustdepth eval CHECKPOINT` first.", ""]
    priors = _priors(config)
    lines += ["## Priors used in training", "", *(priors or ["- none beyond the training data"]), ""]
    lines += ["## Use", "", "```python", "import robustdepth.hub", "model = robustdepth.hub.from_pretrained(\"DIR\")",
              "depth = model.infer(\"frame.png\")  # H×W float32 metres", "```", ""]
    return "\n".join(lines)


def save_pretrained(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out/{config.json, model.safetensors, README.md}`` from a checkpoint (file or run directory)."""
    from safetensors.torch import save_file

    checkpoint, out = Path(checkpoint), Path(out)
    data = load_checkpoint(checkpoint)
    config = data["config"]
    model = config["model"]
    imported = data.get("imported")
    hub_config: dict[str, Any] = {
        "format": HUB_FORMAT, "architecture": "DepthNet", "num_layers": int(model["num_layers"]),
        "scales": list(model["scales"]), "input_size": [int(config["data"]["height"]), int(config["data"]["width"])],
        "min_depth": float(model["min_depth"]), "max_depth": float(model["max_depth"]),
        "output": output_kind(config, imported), "step": int(data.get("step", 0) or 0),
        "version": data.get("version", {}), "config": config,
    }
    if imported:
        hub_config["imported"] = imported
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in data["models"]["depth"].items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": HUB_FORMAT})
    (out / CONFIG_NAME).write_text(json.dumps(hub_config, indent=2, default=str) + "\n")
    (out / CARD_NAME).write_text(model_card(config, hub_config, _read_results(results_files(checkpoint))))
    return out


def from_pretrained(path: str | Path, device: str = "auto", precision: str = "fp32", channels_last: bool = True) -> Any:
    """A :class:`robustdepth.inference.DepthModel` from a :func:`save_pretrained` directory (no pickle read)."""
    from safetensors.torch import load_file

    from robustdepth.configure import config_from_dict
    from robustdepth.devices import resolve_device
    from robustdepth.inference import DepthModel
    from robustdepth.networks import DepthNet

    path = Path(path)
    config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"{path} is not a robustdepth Hub directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    hub_config = json.loads(config_path.read_text())
    if hub_config.get("format") != HUB_FORMAT:
        raise CheckpointError(f"{config_path}: format {hub_config.get('format')!r}, expected {HUB_FORMAT!r}")
    cfg = config_from_dict(hub_config["config"], strict=False)
    net = DepthNet(hub_config["num_layers"], scales=hub_config["scales"])
    load_weights(net, load_file(str(weights_path)), weights_path, "depth")
    dev = resolve_device(device)
    height, width = hub_config["input_size"]
    return DepthModel(net.to(dev).eval().requires_grad_(False), height, width, hub_config["min_depth"],
                      hub_config["max_depth"], dev, precision, cfg, channels_last=channels_last)


def depth_estimation(model: Any, image: Any) -> dict[str, Any]:
    """One image → ``{"predicted_depth": H×W float tensor (metres), "depth": PIL 8-bit image}``, the output of
    transformers' ``pipeline("depth-estimation")`` (its min–max scaling of the 8-bit image included)."""
    depth = np.asarray(model.infer(image), dtype=np.float32)
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    return {"predicted_depth": torch.from_numpy(depth), "depth": Image.fromarray((scaled * 255).astype("uint8"))}
