"""Hub layout: save_pretrained → from_pretrained is bit-exact, the model card states what it must, torch.hub
loads the checkout offline, and the output matches transformers' depth-estimation pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.checkpoint import CheckpointError, save_checkpoint
from robustdepth.cli import main
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.hub import depth_estimation, from_pretrained, save_pretrained
from robustdepth.inference import DepthModel
from robustdepth.networks import DepthNet

REPO = Path(__file__).resolve().parent.parent
H, W = 64, 96


def make_run(tmp_path: Path, recipe: str = "monodepth2", overrides: tuple[str, ...] = ()) -> Path:
    torch.manual_seed(0)
    cfg = load_config(recipe, [f"data.height={H}", f"data.width={W}", "train.name=hubtest", *overrides])
    net = DepthNet(cfg.model.num_layers, scales=list(cfg.model.scales))
    for module in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "last.pt", {"config": to_dict(cfg), "models": {"depth": net.state_dict()},
                                                      "step": 7})
    return run


def write_results(run: Path, abs_rel: dict[str, float]) -> None:
    rows = {c: {"abs_rel": v, "sq_rel": v / 2, "rmse": 10 * v, "rmse_log": v, "a1": 1 - v, "a2": 0.95, "a3": 0.99}
            for c, v in abs_rel.items()}
    rows["all"] = rows[next(iter(rows))]
    (run / "results_world.json").write_text(json.dumps({**rows, "protocol": {"name": "world"}, "counts": {}}))


def _frame(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)


def test_round_trip_is_bit_exact(tmp_path):
    run = make_run(tmp_path)
    hub = save_pretrained(run, tmp_path / "hub")
    assert sorted(p.name for p in hub.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    original = DepthModel.from_checkpoint(run, device="cpu", precision="fp32")
    loaded = from_pretrained(hub, device="cpu")
    for (k, a), (k2, b) in zip(original.net.state_dict().items(), loaded.net.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    frame = _frame()
    assert np.array_equal(original.infer(frame), loaded.infer(frame))
    assert (loaded.height, loaded.width, loaded.max_depth) == (H, W, original.max_depth)
    config = json.loads((hub / "config.json").read_text())
    assert config["input_size"] == [H, W] and config["step"] == 7 and config["output"] == "up-to-scale"


def test_model_card_reports_recipe_data_results_and_scale(tmp_path):
    run = make_run(tmp_path)
    write_results(run, {"clear": 0.123, "night": 0.456, "fog": 0.321})
    card = (save_pretrained(run, tmp_path / "hub") / "README.md").read_text()
    assert "pipeline_tag: depth-estimation" in card and "`hubtest`" in card
    assert "embedded synthetic world" in card and f"{H}×{W}" in card and "**up-to-scale**" in card
    assert "| night | 0.456 |" in card and "| fog | 0.321 |" in card and "Protocol `world`" in card
    metric = make_run(tmp_path / "m", overrides=("losses.velocity.weight=0.02",))
    assert "**metric**" in (save_pretrained(metric, tmp_path / "hub2") / "README.md").read_text()


def test_model_card_of_imported_weights_states_licence(tmp_path):
    from robustdepth.weights import import_weights
    from tests.test_weights_import import md2_release, md4all_ckpt, write_md2_folder

    import_weights("monodepth2", write_md2_folder(tmp_path / "rel", md2_release(with_pose=False)), tmp_path / "run")
    card = (save_pretrained(tmp_path / "run", tmp_path / "hub") / "README.md").read_text()
    assert "Monodepth2 licence (Niantic): non-commercial use only" in card
    assert "No results file" in card
    assert "imported (monodepth2), not trained here" in card and "**up-to-scale**" in card
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["imported"]["layout"] == "monodepth2"
    md4all_ckpt(tmp_path / "m.ckpt")
    import_weights("md4all", tmp_path / "m.ckpt", tmp_path / "run_m")
    card = (save_pretrained(tmp_path / "run_m", tmp_path / "hub_m") / "README.md").read_text()
    assert "**metric**" in card and "nuscenes (day-clear)" in card and "CC BY-NC-SA 4.0" in card


def test_export_hf_cli_and_bad_directory(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["export", str(run), "--hf", str(tmp_path / "hub")]) == 0
    assert (tmp_path / "hub" / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="not a robustdepth Hub directory"):
        from_pretrained(tmp_path)
    assert main(["export", str(run)]) == 2
    assert "--onnx PATH and/or --hf DIR" in capsys.readouterr().err


def test_torch_hub_load_local_checkout(tmp_path):
    run = make_run(tmp_path)
    hub = save_pretrained(run, tmp_path / "hub")
    frame = _frame(1)
    for source in (run, hub):
        model = torch.hub.load(str(REPO), "robustdepth", checkpoint=str(source), source="local", device="cpu")
        assert np.array_equal(model.infer(frame), from_pretrained(hub, device="cpu").infer(frame))


def test_pipeline_compatible_output(tmp_path):
    """Same keys, types and 8-bit scaling as transformers' DepthEstimationPipeline.postprocess."""
    model = from_pretrained(save_pretrained(make_run(tmp_path), tmp_path / "hub"), device="cpu")
    frame = _frame(2)
    out = depth_estimation(model, Image.fromarray(frame))
    assert set(out) == {"predicted_depth", "depth"}
    depth = out["predicted_depth"]
    assert torch.is_tensor(depth) and depth.shape == (H, W)
    np.testing.assert_array_equal(depth.numpy(), model.infer(frame))
    d = depth.numpy()
    expected = ((d - d.min()) / (d.max() - d.min()) * 255).astype("uint8")
    assert out["depth"].mode == "L" and np.array_equal(np.asarray(out["depth"]), expected)
