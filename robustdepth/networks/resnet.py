"""Plain-torch ResNet with torchvision's parameter names, and Monodepth2's ResNet encoder.

torchvision cannot be imported in this project, yet users own ImageNet checkpoints saved by it
(``resnet18-f37072fd.pth`` …) and Monodepth2 release files (``encoder.pth``). Both load key-for-key
because every attribute name below (``conv1``, ``bn1``, ``layer1.0.downsample.0`` …) matches
torchvision's ``ResNet`` exactly, and ``ResnetEncoder`` keeps the network at ``self.encoder`` as
Monodepth2 does (keys ``encoder.conv1.weight`` …).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResnetEncoder",
    "load_imagenet_weights",
    "read_state_dict",
]

# Monodepth2 normalises inputs in [0, 1] with one mean/std for all channels (not ImageNet's per-channel).
MD2_INPUT_MEAN = 0.45
MD2_INPUT_STD = 0.225


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34), torchvision's layout."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 bottleneck (ResNet-50), stride on the 3×3 conv as torchvision ("ResNet v1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# num_layers -> (block type, blocks per stage), as torchvision's resnet18/34/50.
_RESNET_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


def _check_num_layers(num_layers: int) -> None:
    if num_layers not in _RESNET_SPECS:
        raise ValueError(f"num_layers must be one of {sorted(_RESNET_SPECS)}, got {num_layers!r}")


class ResNet(nn.Module):
    """ResNet-18/34/50 whose state_dict keys and shapes equal torchvision's.

    ``num_input_images`` > 1 widens ``conv1`` to 3·n input channels (Monodepth2's pose encoder takes
    two stacked RGB frames). The ImageNet head (``avgpool``, ``fc``) is kept, although the encoder never
    calls it, so torchvision and Monodepth2 checkpoints load strictly.
    """

    def __init__(self, num_layers: int, num_input_images: int = 1, num_classes: int = 1000):
        super().__init__()
        _check_num_layers(num_layers)
        if num_input_images < 1:
            raise ValueError(f"num_input_images must be >= 1, got {num_input_images}")
        block, layers = _RESNET_SPECS[num_layers]
        self.num_layers = num_layers
        self.num_input_images = num_input_images
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights()

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """torchvision's (and Monodepth2's) initialisation, used when no ImageNet weights are given."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The 5 feature levels Monodepth2 uses: relu(bn1(conv1)) at 1/2, then layer1..4 at 1/4..1/32."""
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet classification logits (torchvision's forward), for completeness and checks."""
        x = self.forward_features(x)[-1]
        return self.fc(torch.flatten(self.avgpool(x), 1))


def read_state_dict(path: str | Path, what: str = "checkpoint") -> dict[str, Tensor]:
    """Read a tensor dict from a local ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors`` file.

    A ``{"state_dict": …}`` or ``{"model": …}`` wrapper is unwrapped. Non-tensor entries (Monodepth2's
    ``height``/``width``/``use_stereo``) are returned too; callers separate them.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (weights are never downloaded; give a local file)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{what} {path} is not a readable safetensors file: {err}") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{what} {path} could not be read with torch.load(weights_only=True) "
            f"(corrupt, or it pickles code objects): {err}"
        ) from err
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not any(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{what} {path} is not a state dict (got {type(obj).__name__} without tensors)")
    return dict(obj)


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" … (+{len(keys) - n} more)" if len(keys) > n else "")


def load_state_dict_checked(module: nn.Module, state: Mapping[str, Tensor], path: str | Path) -> None:
    """``module.load_state_dict(state)`` with an error that names ``path`` and a few offending keys.

    Missing ``num_batches_tracked`` buffers are tolerated (old torchvision/Monodepth2 files lack them;
    they do not affect inference).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shape mismatches ({_few(wrong_shape)})")
    if problems:
        raise ValueError(f"weights in {path} do not fit {type(module).__name__}: " + "; ".join(problems))
    filled = dict(state)
    for k, v in own.items():  # keep the module's own counters where the file has none
        filled.setdefault(k, v)
    module.load_state_dict(filled, strict=True)


def load_imagenet_weights(model: ResNet, path: str | Path) -> None:
    """Load a local torchvision ImageNet ResNet checkpoint into ``model`` (in place).

    For ``num_input_images`` = n > 1 the RGB ``conv1`` kernel is repeated n times along the input
    channels and divided by n (Monodepth2's rule), so a stack of n identical images gives the
    ImageNet response. The ``fc`` head is ignored when the file has none or one of another size
    (the encoder never uses it).
    """
    state = {k: v for k, v in read_state_dict(path, "ImageNet weights").items() if isinstance(v, Tensor)}
    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 3 and model.num_input_images > 1:
        n = model.num_input_images
        state["conv1.weight"] = torch.cat([conv1] * n, dim=1) / n
    own = model.state_dict()
    for key in ("fc.weight", "fc.bias"):
        if key not in state or tuple(state[key].shape) != tuple(own[key].shape):
            state[key] = own[key]
    load_state_dict_checked(model, state, path)


class ResnetEncoder(nn.Module):
    """Monodepth2's ResNet encoder: image in [0, 1] → 5 feature levels (1/2 … 1/32 resolution).

    Channels (``num_ch_enc``): [64, 64, 128, 256, 512] for ResNet-18/34, [64, 256, 512, 1024, 2048]
    for ResNet-50. ``pretrained_path`` is a local torchvision ImageNet checkpoint (optional).
    """

    def __init__(self, num_layers: int = 18, num_input_images: int = 1, pretrained_path: str | None = None):
        super().__init__()
        _check_num_layers(num_layers)
        self.encoder = ResNet(num_layers, num_input_images)
        self.num_ch_enc: list[int] = [64, 64, 128, 256, 512]
        if num_layers > 34:
            self.num_ch_enc = [64] + [c * 4 for c in self.num_ch_enc[1:]]
        if pretrained_path:
            load_imagenet_weights(self.encoder, pretrained_path)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x``: B×3n×H×W in [0, 1]; returns [64@1/2, 64@1/4, 128@1/8, 256@1/16, 512@1/32] (R18)."""
        return self.encoder.forward_features((x - MD2_INPUT_MEAN) / MD2_INPUT_STD)
