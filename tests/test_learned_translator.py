"""End-to-end tests of the one-step diffusion translator hook with a tiny random-weight model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("diffusers", reason="robustdepth[diffusion] extra not installed")
pytest.importorskip("peft", reason="robustdepth[diffusion] extra not installed")

from robustdepth.data.base import color_key
from robustdepth.degrade.learned import (
    ADAPTER_FILE,
    SOURCE,
    OneStepTranslator,
    tiny_components,
    train_translator,
)

SIZE = 32  # one image size everywhere: each new shape costs a CPU kernel warm-up


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core host, a 2-thread pool waiting on a descheduled thread made
    these many tiny ops ~30× slower (46 s vs 1.3 s CPU for two training steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> tuple[OneStepTranslator, dict[str, torch.Tensor], list[dict[str, float]]]:
    """A tiny translator, its adapter weights before training, and the history of 2 training steps."""
    translator = OneStepTranslator.build_tiny()
    before = {k: v.clone() for k, v in translator.adapter_state_dict().items()}
    g = torch.Generator().manual_seed(0)
    clear = [torch.rand(1, 3, SIZE, SIZE, generator=g) * 0.5 + 0.5]  # bright "day" domain
    night = [(torch.rand(1, 3, SIZE, SIZE, generator=g) * 0.3,)]  # dark domain, as (tensor,) batches
    history = train_translator(translator, clear, night, "night", steps=2, lr=1e-3, discriminator_width=8)
    return translator, before, history


def test_only_adapters_and_skips_are_trainable() -> None:
    translator = OneStepTranslator.build_tiny()
    trainable = {name for name, p in translator.named_parameters() if p.requires_grad}
    assert trainable, "nothing is trainable"
    assert all("lora_" in name or name.startswith("skip_convs.") for name in trainable)
    assert any(name.startswith("unet.") for name in trainable)
    assert any(name.startswith("vae.decoder.") for name in trainable)
    assert not any(name.startswith("vae.encoder.") for name in trainable)  # LoRA on the decoder only
    assert not any(p.requires_grad for p in translator.text_encoder.parameters())
    # Zero-initialised skips and LoRA B = 0: a fresh translator is the frozen base model.
    assert all(float(p.detach().abs().sum()) == 0 for p in translator.skip_convs.parameters())


def test_training_changes_adapters_and_stays_finite(trained) -> None:
    translator, before, history = trained
    assert len(history) == 2
    for record in history:
        assert set(record) >= {"loss_g", "cycle", "adversarial", "identity", "loss_d"}
        assert all(torch.isfinite(torch.tensor(v)) for v in record.values())
    after = translator.adapter_state_dict()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("lora_" in k and k.startswith("unet.") for k in changed)
    assert any(k.startswith("skip_convs.") for k in changed)
    base = {k: v for k, v in translator.state_dict().items() if "lora_" not in k and not k.startswith("skip")}
    fresh = {k: v for k, v in OneStepTranslator.build_tiny().state_dict().items() if k in base}
    assert all(torch.equal(base[k], fresh[k]) for k in fresh), "frozen base weights changed during training"


def test_translation_shape_range_and_padding(trained) -> None:
    translator, _, _ = trained
    images = torch.rand(2, 3, SIZE - 3, SIZE - 1)  # not a multiple of the VAE factor: padded and cropped back
    out = translator.translate(images, "night")
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    back = translator.translate(out, SOURCE)
    assert back.shape == images.shape
    with pytest.raises(KeyError, match="valid: clear, night"):
        translator.translate(images, "hail")
    with pytest.raises(ValueError, match="B×3×H×W"):
        translator.translate(images[:, :1], "night")


def test_adapters_round_trip(trained, tmp_path: Path) -> None:
    translator, _, _ = trained
    images = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    expected = translator.translate(images, "night")
    path = translator.save_adapters(tmp_path / "adapters")
    assert path.name == ADAPTER_FILE
    fresh = OneStepTranslator.build_tiny()
    assert not torch.equal(fresh.translate(images, "night"), expected)  # training really changed the output
    fresh.load_adapters(tmp_path / "adapters")
    assert torch.equal(fresh.translate(images, "night"), expected)
    other_rank = OneStepTranslator.build_tiny({"unet_rank": 4})
    with pytest.raises(ValueError, match="ranks"):
        other_rank.load_adapters(tmp_path / "adapters")
    with pytest.raises(FileNotFoundError, match="no translator adapters"):
        fresh.load_adapters(tmp_path / "missing")


def test_from_pretrained_local_layout(tmp_path: Path) -> None:
    """Components saved in the standard diffusers layout load back (locally) into the same translator."""
    components = tiny_components()
    root = tmp_path / "sd-turbo-tiny"
    for name, component in components.items():
        component.save_pretrained(root / name)
    torch.manual_seed(1)  # LoRA A init is random: draw the same values for both
    reference = OneStepTranslator(**tiny_components(), unet_rank=4, vae_rank=4)
    torch.manual_seed(1)
    loaded = OneStepTranslator.from_pretrained(root, unet_rank=4, vae_rank=4)
    images = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(loaded.translate(images, "night"), reference.translate(images, "night"), atol=1e-5)


def test_missing_local_weights_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        OneStepTranslator.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="vae"):
        OneStepTranslator.from_pretrained(tmp_path / "partial")


def test_training_rejects_bad_arguments() -> None:
    translator = OneStepTranslator.build_tiny({"unet_rank": 4})
    batch = [torch.rand(1, 3, SIZE, SIZE)]
    with pytest.raises(KeyError, match="valid: night"):
        train_translator(translator, batch, batch, "clear", steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_translator(translator, batch, batch, "night", steps=0)
    with pytest.raises(FileNotFoundError, match="CLIP vision"):
        train_translator(translator, batch, batch, "night", steps=1, clip_vision_dir="/nonexistent/clip")


def test_clip_vision_discriminator_from_local_dir(tmp_path: Path) -> None:
    """The vision-aided discriminator loads a local CLIP vision tower, keeps it frozen and trains its heads."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from robustdepth.degrade.learned import CLIPVisionDiscriminator

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=SIZE, patch_size=8)
    CLIPVisionModel(config).save_pretrained(tmp_path / "clip")
    disc = CLIPVisionDiscriminator(tmp_path / "clip")
    logits = disc(torch.rand(2, 3, SIZE, SIZE))
    tokens = (SIZE // 8) ** 2 + 1
    assert logits.shape == (2, tokens * len(disc.levels))
    logits.mean().backward()
    assert all(p.grad is None for p in disc.clip.parameters())
    assert all(p.grad is not None for p in disc.heads.parameters())


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import robustdepth.degrade.learned as learned

    monkeypatch.setattr(learned, "_IMPORT_ERROR", ImportError("No module named 'peft'"))
    with pytest.raises(ImportError, match=r"pip install robustdepth\[diffusion\]"):
        OneStepTranslator.build_tiny()
    with pytest.raises(ImportError, match="peft"):
        OneStepTranslator.from_pretrained("/nonexistent")


def test_translator_in_the_data_path_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CLI: train on unpaired folders (real diffusers/peft classes, tiny random weights loaded from a local
    diffusers directory), `degrade write --translator`, then the offline supply reads the written set."""
    import numpy as np
    from PIL import Image

    from robustdepth.cli import main
    from robustdepth.configure import load_config
    from robustdepth.data import build_dataset
    from robustdepth.degrade.learned_io import load_trained_translator
    from tests.conftest import corridor_overrides, write_corridor_sequence

    base = tmp_path / "sd_tiny"
    for name, component in tiny_components().items():
        component.save_pretrained(str(base / name))
    g = np.random.default_rng(0)
    for folder, lo, hi in (("clear", 128, 255), ("night", 0, 80)):
        (tmp_path / folder / "sub").mkdir(parents=True)
        for i in range(2):
            image = g.integers(lo, hi, (40, 56, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / folder / "sub" / f"{i}.png")
    out = tmp_path / "translator"
    assert main(["degrade", "train-translator", "--clear", str(tmp_path / "clear"), "--adverse",
                 f"night={tmp_path / 'night'}", "--out", str(out), "--base", str(base), "--steps", "1",
                 "--size", str(SIZE), str(SIZE), "--unet-rank", "8", "--vae-rank", "4", "--lr", "1e-3"]) == 0
    assert (out / ADAPTER_FILE).is_file()
    translator, manifest = load_trained_translator(out)
    assert manifest["conditions"] == ["night"] and len(manifest["history"]["night"]) == 1
    fresh = OneStepTranslator.from_pretrained(base, unet_rank=8, vae_rank=4)
    assert any(not torch.equal(v, fresh.adapter_state_dict()[k]) for k, v in translator.adapter_state_dict().items())

    seq = write_corridor_sequence(tmp_path / "seq", frames=5, height=64, width=96)
    over = corridor_overrides(seq, **{"data.height": 64, "data.width": 96})
    assert main(["degrade", "write", "monodepth2", *over, "--out", str(tmp_path / "set"), "--conditions", "night",
                 "--translator", str(out)]) == 0
    meta = json.loads((tmp_path / "set" / "degraded.json").read_text())
    assert meta["translator"] == str(out) and meta["conditions"] == ["night"]
    written = sorted((tmp_path / "set").rglob("night/*.png"))
    assert len(written) == 3  # frames with both neighbours
    cfg = load_config("monodepth2", [*over, "degrade.mode=offline", f"degrade.offline_root={tmp_path / 'set'}",
                                     "degrade.rules=[{condition: night, p: 1.0}]", "augment.flip_p=0"])
    sample = build_dataset(cfg, "train", train=True)[0]
    expected = translator.translate(sample[color_key(0)][None], "night")[0]
    assert sample["is_degraded"] and sample["degraded"].shape == (3, 64, 96)
    assert (sample["degraded"] - expected).abs().max() <= 1 / 255 + 1e-6  # the translator's output, as 8-bit PNG
    assert main(["degrade", "write", "monodepth2", *over, "--out", str(tmp_path / "set2"), "--conditions", "rain",
                 "--translator", str(out)]) != 0
    assert "trained for ['night']" in capsys.readouterr().err
