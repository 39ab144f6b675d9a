"""Importers of released weights: each layout's fixture (key names and prefixes as the projects save them)
round-trips into a robustdepth checkpoint whose predictions equal an independent forward of the original
layout; Lightning files load without running code."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustdepth.checkpoint import load_checkpoint
from robustdepth.cli import main
from robustdepth.config import ConfigError
from robustdepth.networks import DepthNet, PoseNet, disp_to_depth
from robustdepth.weights import UnsafeCheckpointError, import_weights, load_lightning_checkpoint, read_layout

H, W = 64, 96


# ------------------------------------------------------------------ fixtures in the released layouts


def _randomise(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Non-trivial weights: random values everywhere, positive variances, so every tensor matters."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(value.shape, generator=gen)
        else:
            out[key] = 0.1 * torch.randn(value.shape, generator=gen)
    return out


def md2_release(seed: int = 0, with_pose: bool = True, num_layers: int = 18) -> dict[str, dict]:
    """encoder.pth / depth.pth / pose_encoder.pth / pose.pth as monodepth2's save_model writes them."""
    net = DepthNet(num_layers)
    encoder = _randomise(net.encoder.state_dict(), seed)
    encoder.update(height=H, width=W, use_stereo=False)  # save_model adds these to encoder.pth
    files = {"encoder.pth": encoder, "depth.pth": _randomise(net.decoder.state_dict(), seed + 1)}
    if with_pose:
        pose = PoseNet(18)
        files["pose_encoder.pth"] = _randomise(pose.encoder.state_dict(), seed + 2)
        files["pose.pth"] = _randomise(pose.decoder.state_dict(), seed + 3)
    return files


def test_fixture_keys_are_monodepth2s():
    """The layout as read from nianticlabs/monodepth2 (networks/resnet_encoder.py, depth_decoder.py,
    pose_decoder.py): ResnetEncoder.encoder is a torchvision ResNet, DepthDecoder.decoder a ModuleList of
    ConvBlock(Conv3x3) then Conv3x3 dispconvs, PoseDecoder.net a ModuleList of 4 convs."""
    files = md2_release()
    enc, dec, pdec = files["encoder.pth"], files["depth.pth"], files["pose.pth"]
    assert enc["encoder.conv1.weight"].shape == (64, 3, 7, 7)
    assert enc["encoder.fc.weight"].shape == (1000, 512)
    assert "encoder.layer4.1.bn2.running_var" in enc
    assert dec["decoder.0.conv.conv.weight"].shape == (256, 512, 3, 3)  # upconv(4,0)
    assert dec["decoder.9.conv.conv.weight"].shape == (16, 16, 3, 3)  # upconv(0,1)
    assert dec["decoder.10.conv.weight"].shape == (1, 16, 3, 3)  # dispconv(0)
    assert dec["decoder.13.conv.weight"].shape == (1, 128, 3, 3)  # dispconv(3)
    assert files["pose_encoder.pth"]["encoder.conv1.weight"].shape == (64, 6, 7, 7)
    assert pdec["net.3.weight"].shape == (12, 256, 1, 1)


def write_md2_folder(folder: Path, files: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in files.items():
        torch.save(state, folder / name)
    return folder


def _fake_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(_fake_module(parent) if parent not in sys.modules else sys.modules[parent], child, module)
    sys.modules[name] = module
    return module


class FakeModules:
    """Register throwaway modules (``config.config``, ``yacs.config``) so classes pickle under those names."""

    def __init__(self, *names: str):
        self.names = names
        self.saved: dict[str, object] = {}

    def __enter__(self) -> dict[str, types.ModuleType]:
        created = {}
        for name in self.names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                self.saved.setdefault(sub, sys.modules.get(sub))
            created[name] = _fake_module(name)
        return created

    def __exit__(self, *exc) -> None:
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def md4all_cfg_class(module: str):
    """A yacs-like CfgNode (dict subclass with yacs' instance flags) pickled under ``module``."""

    class CfgNode(dict):
        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__.update({"__immutable__": False, "__deprecated_keys__": set(),
                                  "__renamed_keys__": {}, "__new_allowed__": False})

    CfgNode.__module__ = module
    CfgNode.__qualname__ = "CfgNode"
    return CfgNode


def md4all_ckpt(path: Path, seed: int = 5, mode: str = "Daytime", dataset: str = "nuscenes",
                module: str = "config.config", extra_hparams: dict | None = None) -> dict[str, torch.Tensor]:
    """A Lightning checkpoint as md4all's Md4All module saves it: state_dict prefixes depth_model. / pose_model.
    (+ a teacher under loss.), hyper_parameters {'cfg': CfgNode, 'is_train': bool} (save_hyperparameters)."""
    net, pose = DepthNet(18), PoseNet(18)
    depth = {f"depth_model.{k}": v for k, v in _randomise(net.state_dict(), seed).items()}
    state = {**depth, **{f"pose_model.{k}": v for k, v in _randomise(pose.state_dict(), seed + 1).items()},
             "loss.teacher.depth_model.encoder.encoder.conv1.weight": torch.zeros(64, 3, 7, 7)}
    with FakeModules(module) as mods:
        CfgNode = md4all_cfg_class(module)
        mods[module].CfgNode = CfgNode
        cfg = CfgNode({
            "EXPERIMENT_NAME": "fixture",
            "LOSS": CfgNode({"VELOCITY_WEIGHT": 0.0, "SUPERVISED": CfgNode({"WEIGHT": 1.0})}),  # md4allDDa
            "DATASET": CfgNode({"NAME": dataset, "WEATHER": CfgNode({"TRAIN": ["day-clear"]}),
                                "AUGMENTATION": CfgNode({
                "RESIZE": CfgNode({"HEIGHT": H, "WIDTH": W}),
                "NORMALIZE": CfgNode({"MODE": mode,
                                      "DATASET": CfgNode({"MEAN": 0.45, "STD": 0.225}),
                                      "DAYTIME": CfgNode({"DAY": CfgNode({"MEAN": 0.4130, "STD": 0.2093}),
                                                          "NIGHT": CfgNode({"MEAN": 0.1652, "STD": 0.1728})})})})}),
            "MODEL": CfgNode({"DEPTH": CfgNode({"ENCODER": CfgNode({"VERSION": "resnet-18", "PRETRAINED": True}),
                                                "MIN_DEPTH": 0.1, "MAX_DEPTH": 80.0}),
                              "POSE": CfgNode({"ROTATION_MODE": "euler"})}),
            "DATASET_TEMP": (0, -1, 1),
        })
        torch.save({"epoch": 19, "global_step": 1000, "pytorch-lightning_version": "1.9.0",
                    "state_dict": state, "hparams_name": "kwargs",
                    "hyper_parameters": {"cfg": cfg, "is_train": True, **(extra_hparams or {})},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}],
                    "lr_schedulers": [{"step_size": 5, "gamma": 0.5, "last_epoch": 19}],
                    "callbacks": {"ModelCheckpoint{'monitor': 'x'}": {"best_model_score": torch.tensor(0.1),
                                                                      "best_model_path": "a.ckpt"}}}, path)
    return {k[len("depth_model."):]: v for k, v in depth.items()}


# ------------------------------------------------------------------ an independent forward of the original layout


def _bn(x, s, p):
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                        False, 0.0, 1e-5)


def reference_disp(enc: dict, dec: dict, image: torch.Tensor, mean: float, std: float,
                   ep: str = "encoder.") -> torch.Tensor:
    """Monodepth2's ResnetEncoder (torchvision ResNet-18) + DepthDecoder written from the original key names
    with torch.nn.functional only: scale-0 sigmoid disparity."""
    x = (image - mean) / std
    x = F.relu(_bn(F.conv2d(x, enc[f"{ep}conv1.weight"], stride=2, padding=3), enc, f"{ep}bn1"))
    feats = [x]
    x = F.max_pool2d(x, 3, 2, 1)
    for layer in range(1, 5):
        for block in range(2):
            p = f"{ep}layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(_bn(F.conv2d(x, enc[f"{p}.conv1.weight"], stride=stride, padding=1), enc, f"{p}.bn1"))
            out = _bn(F.conv2d(out, enc[f"{p}.conv2.weight"], padding=1), enc, f"{p}.bn2")
            short = x
            if f"{p}.downsample.0.weight" in enc:
                short = _bn(F.conv2d(x, enc[f"{p}.downsample.0.weight"], stride=stride), enc, f"{p}.downsample.1")
            x = F.relu(out + short)
        feats.append(x)

    def conv3x3(t, key):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="reflect"), dec[f"{key}.weight"], dec[f"{key}.bias"])

    x = feats[-1]
    n = 0
    for i in range(4, -1, -1):
        x = F.elu(conv3x3(x, f"decoder.{n}.conv.conv"))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if i > 0:
            x = torch.cat([x, feats[i - 1]], 1)
        x = F.elu(conv3x3(x, f"decoder.{n + 1}.conv.conv"))
        n += 2
    return torch.sigmoid(conv3x3(x, "decoder.10.conv"))


def _double(state: dict) -> dict:
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}


def our_disp(ckpt: Path, image: torch.Tensor) -> torch.Tensor:
    data = load_checkpoint(ckpt)
    cfg = data["config"]["model"]
    net = DepthNet(cfg["num_layers"], scales=cfg["scales"])
    net.load_state_dict(data["models"]["depth"])
    with torch.no_grad():
        return net.eval().to(image.dtype)(image).disp[0]


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("layout", ["monodepth2", "robust-depth", "weatherdepth"])
def test_md2_folder_round_trip(tmp_path, layout):
    files = md2_release(seed=1)
    src = write_md2_folder(tmp_path / "release", files)
    ckpt = import_weights(layout, src, tmp_path / "run")
    data = load_checkpoint(tmp_path / "run")  # the run directory resolves to checkpoints/last.pt
    for key, value in files["encoder.pth"].items():
        if torch.is_tensor(value):
            assert torch.equal(data["models"]["depth"][f"encoder.{key}"], value)
    for key, value in files["depth.pth"].items():
        assert torch.equal(data["models"]["depth"][f"decoder.{key}"], value)
    pose = data["models"]["pose"]
    assert torch.equal(pose["encoder.encoder.conv1.weight"], files["pose_encoder.pth"]["encoder.conv1.weight"])
    assert torch.equal(data["models"]["pose"]["decoder.net.2.bias"], files["pose.pth"]["net.2.bias"])
    image = _image()
    ref = reference_disp(files["encoder.pth"], files["depth.pth"], image, 0.45, 0.225)
    torch.testing.assert_close(our_disp(ckpt, image), ref, rtol=1e-5, atol=1e-6)
    cfg = data["config"]
    assert (cfg["data"]["height"], cfg["data"]["width"]) == (H, W)  # from encoder.pth's height/width
    assert (cfg["model"]["min_depth"], cfg["model"]["max_depth"]) == (0.1, 100.0)
    record = json.loads((tmp_path / "run" / "IMPORT.json").read_text())
    assert record["layout"] == layout and "non-commercial" in record["licence"]
    assert set(record["files"]) == set(files) and all(len(h) == 64 for h in record["files"].values())
    assert data["imported"]["licence"] == record["licence"]


def test_ddp_module_prefix_is_stripped_and_existing_run_refused(tmp_path):
    """Files saved from a DistributedDataParallel wrapper (WeatherDepth's multi-GPU path) carry ``module.``."""
    files = md2_release(seed=6, with_pose=False)
    files["depth.pth"] = {f"module.{k}": v for k, v in files["depth.pth"].items()}
    ckpt = import_weights("weatherdepth", write_md2_folder(tmp_path / "rel", files), tmp_path / "run")
    depth = load_checkpoint(ckpt)["models"]["depth"]
    stored = files["depth.pth"]["module.decoder.4.conv.conv.weight"]
    assert torch.equal(depth["decoder.decoder.4.conv.conv.weight"], stored)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        import_weights("weatherdepth", tmp_path / "rel", tmp_path / "run")


def test_md2_import_predicts_through_depth_model(tmp_path):
    """DepthModel (predict's loader) gives the reference depth: disparity → depth with MD2's 0.1–100 m range."""
    from robustdepth.inference import DepthModel

    files = md2_release(seed=2, with_pose=False)
    import_weights("monodepth2", write_md2_folder(tmp_path / "rel", files), tmp_path / "run")
    image = _image(3)[:1]
    model = DepthModel.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32", channels_last=False)
    depth = model.infer(image[0])
    ref = disp_to_depth(reference_disp(files["encoder.pth"], files["depth.pth"], image, 0.45, 0.225), 0.1, 100.0)[1]
    np.testing.assert_allclose(depth, ref[0, 0].numpy(), rtol=1e-4)
    assert "pose" not in load_checkpoint(tmp_path / "run")["models"]


def test_md2_resnet50_and_teacher_provider_accepts(tmp_path):
    from robustdepth.providers.teacher import load_frozen

    files = md2_release(seed=3, with_pose=False, num_layers=50)
    import_weights("monodepth2", write_md2_folder(tmp_path / "rel", files), tmp_path / "run")
    depth, pose, cfg = load_frozen(tmp_path / "run")
    assert cfg.model.num_layers == 50 and pose is None
    assert torch.equal(depth.state_dict()["encoder.encoder.layer1.0.conv3.weight"],
                       files["encoder.pth"]["encoder.layer1.0.conv3.weight"])


@pytest.mark.parametrize("module", ["config.config", "yacs.config"])
def test_md4all_lightning_round_trip(tmp_path, module):
    """md4all-DDa: daytime normalisation — our net on the exactly remapped input equals md4all's forward with
    its day statistics; the config's resize, depth range and dataset are carried over."""
    from robustdepth.data.nuscenes import daytime_remap

    depth = md4all_ckpt(tmp_path / "md4all.ckpt", module=module)
    ckpt = import_weights("md4all", tmp_path / "md4all.ckpt", tmp_path / "run")
    data = load_checkpoint(ckpt)
    for key, value in depth.items():
        assert torch.equal(data["models"]["depth"][key], value)
    assert "pose" not in data["models"]  # Euler pose: not imported, and said so
    enc = {k[len("encoder."):]: v for k, v in depth.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in depth.items() if k.startswith("decoder.")}
    image = _image(4)
    image = image.double()
    ref = reference_disp(_double(enc), _double(dec), image, 0.4130, 0.2093)  # NormalizeDynamic, day
    torch.testing.assert_close(our_disp(ckpt, daytime_remap(image, 0.4130, 0.2093)), ref, rtol=1e-9, atol=1e-10)
    cfg = data["config"]
    assert (cfg["data"]["height"], cfg["data"]["width"], cfg["model"]["max_depth"]) == (H, W, 80.0)
    assert cfg["data"]["dataset"] == "nuscenes" and cfg["eval"]["protocol"] == "nuscenes_md4all"
    assert cfg["data"]["options"]["daytime_norm"] is True and cfg["data"]["train_conditions"] == ["day-clear"]
    record = data["imported"]
    assert record["input_normalization"]["day"] == {"mean": 0.4130, "std": 0.2093}
    assert "CC BY-NC-SA" in record["licence"] and any("Euler" in n for n in record["notes"])
    assert record["source_config"]["MODEL"]["DEPTH"]["MAX_DEPTH"] == 80.0
    assert record["scale"] == "metric"  # distilled from a velocity-supervised (metric) teacher


def test_acdepth_dataset_normalisation_round_trip(tmp_path):
    depth = md4all_ckpt(tmp_path / "acdepth.ckpt", seed=9, mode="Dataset", dataset="robotcar")
    ckpt = import_weights("acdepth", tmp_path / "acdepth.ckpt", tmp_path / "run")
    enc = {k[len("encoder."):]: v for k, v in depth.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in depth.items() if k.startswith("decoder.")}
    image = _image(5)
    torch.testing.assert_close(our_disp(ckpt, image), reference_disp(enc, dec, image, 0.45, 0.225),
                               rtol=1e-5, atol=1e-6)
    cfg = load_checkpoint(ckpt)["config"]
    assert cfg["eval"]["protocol"] == "robotcar_md4all" and not cfg["data"]["options"].get("daytime_norm", False)


class Payload:
    """Unpickling this runs ``touch MARKER``: the load must refuse it without calling anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_lightning_checkpoint_does_not_run(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    md4all_ckpt(tmp_path / "evil.ckpt", extra_hparams={"x": Payload(marker)})
    with pytest.raises(UnsafeCheckpointError, match="nothing was executed"):
        load_lightning_checkpoint(tmp_path / "evil.ckpt")
    assert main(["weights", "import", "md4all", str(tmp_path / "evil.ckpt"), "--out", str(tmp_path / "run")]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_lightning_reader_turns_config_nodes_into_plain_dicts(tmp_path):
    md4all_ckpt(tmp_path / "a.ckpt")
    data = load_lightning_checkpoint(tmp_path / "a.ckpt")
    cfg = data["hyper_parameters"]["cfg"]
    assert type(cfg) is not dict and isinstance(cfg, dict)  # an OrderedDict stand-in, never the CfgNode class
    assert cfg["MODEL"]["DEPTH"]["MIN_DEPTH"] == 0.1
    assert "config.config" not in sys.modules or not hasattr(sys.modules["config.config"], "CfgNode")


def test_wrong_layout_and_foreign_files_fail_with_one_line(tmp_path, capsys):
    files = md2_release(seed=1, with_pose=False)
    src = write_md2_folder(tmp_path / "rel", files)
    with pytest.raises(ConfigError, match="Monodepth2-style release is a folder"):
        read_layout("monodepth2", src / "encoder.pth")
    with pytest.raises(ConfigError, match="no 'state_dict'|cannot read"):
        read_layout("md4all", src / "encoder.pth")
    (src / "depth.pth").unlink()
    assert main(["weights", "import", "monodepth2", str(src), "--out", str(tmp_path / "run")]) == 2
    assert "lacks depth.pth" in capsys.readouterr().err
    broken = dict(files)
    broken["depth.pth"] = {k: v for k, v in files["depth.pth"].items() if k != "decoder.3.conv.conv.weight"}
    write_md2_folder(tmp_path / "rel2", broken)
    with pytest.raises(ConfigError, match="missing keys"):
        read_layout("monodepth2", tmp_path / "rel2")


def test_cli_import_then_predict(tmp_path, capsys):
    src = write_md2_folder(tmp_path / "rel", md2_release(seed=4, with_pose=False))
    assert main(["weights", "import", "monodepth2", str(src), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "non-commercial" in out and "depth network only" in out
    frame = tmp_path / "frame.png"
    Image.fromarray((np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)).save(frame)
    assert main(["predict", str(tmp_path / "run"), str(frame), "--out", str(tmp_path / "pred"),
                 "--precision", "fp32"]) == 0
    assert np.load(tmp_path / "pred" / "frame_depth.npy").shape == (H, W)
