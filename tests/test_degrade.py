"""Tests of the image-space translators and the per-sample degradation sampler (robustdepth.degrade)."""

from __future__ import annotations

import itertools

import pytest
import torch

from robustdepth.data.base import color_key
from robustdepth.degrade import CONDITIONS, TRANSLATORS, DegradeSampler, image_position_depth, translate

RANDOM_CONDITIONS = ("night", "rain", "fog", "snow", "noise", "low_exposure")  # those that draw random fields


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core host a 2-thread pool stalls on descheduled threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scene(batch: int = 2, height: int = 64, width: int = 128, seed: int = 0) -> torch.Tensor:
    """A structured test image: smooth gradients + bright small spots + high-frequency texture, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, height).reshape(1, 1, height, 1)
    cols = torch.linspace(0, 1, width).reshape(1, 1, 1, width)
    base = torch.cat([0.3 + 0.4 * rows.expand(1, 1, height, width), 0.2 + 0.5 * cols.expand(1, 1, height, width),
                      0.5 - 0.3 * rows * cols], dim=1)
    texture = 0.2 * torch.rand(batch, 1, height, width, generator=g)
    images = (base + texture).clamp(0, 1)
    images[:, :, 10:13, 20:23] = 1.0  # small bright spots (light sources for night)
    return images


def test_registry_lists_all_conditions() -> None:
    assert set(CONDITIONS) == {"night", "rain", "fog", "snow", "noise", "blur", "low_exposure"}
    assert tuple(TRANSLATORS) == CONDITIONS


@pytest.mark.parametrize("condition", CONDITIONS)
def test_shape_range_dtype_device_kept(condition: str) -> None:
    for dtype in (torch.float32, torch.float64):
        images = _scene().to(dtype)
        out = translate(images, condition, 0.8, generator=torch.Generator().manual_seed(1))
        assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("condition", CONDITIONS)
def test_deterministic_per_seed(condition: str) -> None:
    images = _scene()
    a = translate(images, condition, 0.7, generator=torch.Generator().manual_seed(3))
    b = translate(images, condition, 0.7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    if condition in RANDOM_CONDITIONS:
        c = translate(images, condition, 0.7, generator=torch.Generator().manual_seed(4))
        assert (a - c).abs().mean() > 1e-4


@pytest.mark.parametrize("condition", CONDITIONS)
def test_severity_zero_is_identity_and_change_grows(condition: str) -> None:
    images = _scene()
    changes = []
    for severity in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = translate(images, condition, severity, generator=torch.Generator().manual_seed(5))
        changes.append(float((out - images).abs().mean()))
    assert changes[0] < 1e-4, changes
    assert all(later > earlier for earlier, later in itertools.pairwise(changes)), changes
    assert changes[-1] > 0.02, f"{condition} at full severity changes the image too little: {changes}"


@pytest.mark.parametrize("condition", CONDITIONS)
def test_per_image_severity_matches_scalar(condition: str) -> None:
    """A (B,) severity tensor gives each image the result it would get alone (no cross-image mixing)."""
    images = _scene(batch=2)
    batched = translate(images, condition, torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(2))
    assert (batched[0] - images[0]).abs().mean() < 1e-4
    assert (batched[1] - images[1]).abs().mean() > 0.02


def _local_contrast(images: torch.Tensor) -> torch.Tensor:
    """Per-pixel std over a 5×5 window, averaged over channels (B×1×H×W)."""
    mean = torch.nn.functional.avg_pool2d(images, 5, stride=1, padding=2, count_include_pad=False)
    sq = torch.nn.functional.avg_pool2d(images.square(), 5, stride=1, padding=2, count_include_pad=False)
    return (sq - mean.square()).clamp_min(0).sqrt().mean(dim=1, keepdim=True)


def test_fog_lowers_contrast_more_far_than_near() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 64, 128, generator=g) * 0.8 + 0.1  # uniform texture everywhere
    depth = torch.full((1, 1, 64, 128), 5.0)
    depth[..., 64:] = 60.0  # right half far
    out = translate(images, "fog", 0.7, generator=torch.Generator().manual_seed(1), depth=depth)
    ratio = _local_contrast(out)[..., 4:-4, 4:-4] / _local_contrast(images)[..., 4:-4, 4:-4]
    near, far = ratio[..., :56].mean(), ratio[..., 68:].mean()
    assert far < 0.5 * near, (float(near), float(far))
    assert near > 0.4


def test_depth_changes_fog_and_is_resized() -> None:
    images = _scene()
    near = translate(images, "fog", 0.8, generator=torch.Generator().manual_seed(0), depth=torch.full((2, 16, 32), 3.0))
    far = translate(images, "fog", 0.8, generator=torch.Generator().manual_seed(0), depth=torch.full((2, 16, 32), 70.0))
    assert (far - images).abs().mean() > 3 * (near - images).abs().mean()


def test_image_position_prior_is_far_at_horizon_and_near_at_bottom() -> None:
    depth = image_position_depth(96, 320)
    assert depth.shape == (1, 1, 96, 320)
    assert depth[0, 0, -1, 160] < 8.0 and depth[0, 0, 40, 160] > 40.0
    assert depth[0, 0, 20, 0] < depth[0, 0, 20, 140]  # side structures nearer than the centre


def test_bad_inputs_raise_clear_errors() -> None:
    images = _scene()
    with pytest.raises(KeyError, match="valid conditions: night"):
        translate(images, "hail", 0.5)
    with pytest.raises(ValueError, match="B×3×H×W"):
        translate(images[:, :2], "fog", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        translate(images * 255, "fog", 0.5)
    with pytest.raises(ValueError, match="floating"):
        translate((images * 255).to(torch.uint8), "fog", 0.5)
    with pytest.raises(ValueError, match="severity must lie in"):
        translate(images, "fog", 1.5)
    with pytest.raises(ValueError, match="shape"):
        translate(images, "fog", torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="depth must have shape"):
        translate(images, "fog", 0.5, depth=torch.ones(3, 1, 8, 8))
    with pytest.raises(ValueError, match="positive"):
        translate(images, "fog", 0.5, depth=torch.zeros(2, 1, 8, 8))


def test_md4all_sampler_gives_a_third_each() -> None:
    sampler = DegradeSampler.md4all_nuscenes()
    g = torch.Generator().manual_seed(0)
    draws = 20000
    counts = {"rain": 0, "night": 0, "clear": 0}
    for _ in range(draws):
        choice = sampler.sample(g)
        counts["clear" if choice is None else choice[0]] += 1
    expected = sampler.effective_probabilities()
    assert expected == pytest.approx({"rain": 0.335, "night": 0.33, "clear": 0.335})
    for name, count in counts.items():
        assert abs(count / draws - expected[name]) < 0.015, (name, count / draws)


def test_sampler_overwrite_order_and_severity_range() -> None:
    """A later rule that always fires overwrites an earlier one; severities stay inside the given range."""
    sampler = DegradeSampler([("rain", 1.0, (0.2, 0.4)), ("night", 1.0, (0.6, 0.8))])
    g = torch.Generator().manual_seed(1)
    choices = [sampler.sample(g) for _ in range(200)]
    assert all(c is not None and c[0] == "night" and 0.6 <= c[1] <= 0.8 for c in choices)
    assert max(c[1] for c in choices) - min(c[1] for c in choices) > 0.1  # severities really vary


def test_sampler_apply_returns_label_and_degraded_image() -> None:
    image = _scene(batch=1)
    always = DegradeSampler([("snow", 1.0, (0.9, 1.0))])
    out, label = always.apply(image, torch.Generator().manual_seed(0))
    assert label == "snow" and out.shape == image.shape and (out - image).abs().mean() > 0.02
    out3, label3 = always.apply(image[0], torch.Generator().manual_seed(0))
    assert label3 == "snow" and torch.equal(out3, out[0])
    never = DegradeSampler([("night", 0.0, (1.0, 1.0))])
    same, clear = never.apply(image, torch.Generator().manual_seed(0))
    assert clear == "clear" and same is image


def test_sampler_rejects_bad_rules() -> None:
    with pytest.raises(KeyError, match="valid conditions"):
        DegradeSampler([("sandstorm", 0.5, (0.0, 1.0))])
    with pytest.raises(ValueError, match="probability"):
        DegradeSampler([("rain", 1.5, (0.0, 1.0))])
    with pytest.raises(ValueError, match="severity range"):
        DegradeSampler([("rain", 0.5, (0.8, 0.2))])
    with pytest.raises(ValueError, match="one image"):
        DegradeSampler([("rain", 1.0)]).apply(_scene(batch=2))


def test_gallery_renders_grid_with_world_column(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from robustdepth.degrade.gallery import degradation_gallery

    clear = (_scene(batch=1)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    world = {"day-rain": clear[::-1].copy(), "night": (clear // 4).astype(np.uint8)}
    depth = image_position_depth(64, 128)[0, 0].numpy()
    path = degradation_gallery(clear, world, tmp_path / "g" / "gallery.png", depth=depth,
                               conditions=("night", "rain", "fog"))
    rendered = np.asarray(Image.open(path).convert("RGB"))
    assert rendered.shape[0] > 100 and rendered.shape[1] > rendered.shape[0]  # 3 rows × 5 columns, wide
    assert rendered.std() > 10  # not blank
    with pytest.raises(ValueError, match="world condition 'sandstorm'"):
        degradation_gallery(clear, {"sandstorm": clear}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="uint8"):
        degradation_gallery(clear.astype(np.float32), {}, tmp_path / "x.png")


@pytest.mark.parametrize("condition", CONDITIONS)
def test_opencv_and_kornia_filter_paths_agree(condition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU tensors are filtered with OpenCV, others (GPU) with kornia: both give the same translation."""
    from robustdepth.degrade import filters

    images = _scene()
    with_cv = translate(images, condition, 0.7, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(filters, "_use_cv", lambda _images: False)
    with_kornia = translate(images, condition, 0.7, generator=torch.Generator().manual_seed(0))
    assert (with_cv - with_kornia).abs().max() < 2e-3, condition


def test_offline_supply_reads_md4all_style_translated_folders(tmp_path) -> None:
    """md4all's rule: the translated copy is FOLDER/<frame path relative to data.root>, any size → resized; flips
    follow the sample; a condition missing from the folders falls back to offline_root (here: an error)."""
    import numpy as np
    from PIL import Image

    from robustdepth.config import ConfigError
    from robustdepth.configure import load_config
    from robustdepth.data import build_dataset
    from tests.conftest import corridor_overrides, write_corridor_sequence

    seq = write_corridor_sequence(tmp_path / "seq", frames=5)
    night = tmp_path / "translated" / "night"
    for frame in sorted(seq.glob("*.png")):
        marked = np.full((128, 384, 3), 0, dtype=np.uint8)
        marked[:, :192] = 200  # left half bright: tells a flipped copy apart
        target = night / frame.relative_to(seq)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(marked).save(target)

    def cfg(flip: float, rules: str = "[{condition: night, p: 1.0}]"):
        return load_config("monodepth2", corridor_overrides(seq, **{
            "degrade.mode": "offline", "degrade.translated_folders": f"{{night: {night}}}",
            "degrade.rules": rules, "augment.flip_p": flip}))
    sample = build_dataset(cfg(0.0), "train", train=True)[0]
    assert sample["is_degraded"] and sample["degraded_condition"] == "night"
    assert sample["degraded"].shape == sample[color_key(0)].shape == (3, 64, 192)
    assert sample["degraded"][:, :, :90].mean() > 0.7 and sample["degraded"][:, :, 102:].mean() < 0.05
    flipped = build_dataset(cfg(1.0), "train", train=True)[0]
    assert torch.equal(flipped["degraded"], sample["degraded"].flip(-1))
    with pytest.raises(ConfigError, match="rain"):
        cfg(0.0, "[{condition: night, p: 0.5}, {condition: rain, p: 0.5}]")


def test_bad_degrade_rules_in_a_recipe_are_config_errors() -> None:
    from types import SimpleNamespace

    from robustdepth.config import ConfigError
    from robustdepth.degrade.supply import sampler_from_config

    def rules(condition: str, p: float, severity=(1.0, 1.0)):
        return SimpleNamespace(rules=[SimpleNamespace(condition=condition, p=p, severity=list(severity))])
    with pytest.raises(ConfigError, match="degrade.rules: unknown degradation condition 'hail'"):
        sampler_from_config(rules("hail", 0.5))
    with pytest.raises(ConfigError, match="degrade.rules: probability"):
        sampler_from_config(rules("night", 1.5))
    with pytest.raises(ConfigError, match="degrade.rules: severity range"):
        sampler_from_config(rules("night", 0.5, (0.9, 0.1)))


def test_translator_training_inputs_fail_early_with_clear_messages(tmp_path) -> None:
    from pathlib import Path

    from robustdepth.config import ConfigError
    from robustdepth.data.base import DataError
    from robustdepth.degrade.learned_io import TranslatorTraining, parse_adverse, train_from_folders

    assert parse_adverse(["night=a/b", "rain=c"]) == {"night": Path("a/b"), "rain": Path("c")}
    with pytest.raises(ConfigError, match="CONDITION=FOLDER"):
        parse_adverse(["night"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no_such_folder"):
        train_from_folders(TranslatorTraining(clear=tmp_path / "no_such_folder", adverse={"night": tmp_path},
                                              out=tmp_path / "out"))
    with pytest.raises(DataError, match="holds no .png/.jpg"):
        train_from_folders(TranslatorTraining(clear=tmp_path / "empty", adverse={"night": tmp_path / "empty"},
                                              out=tmp_path / "out"))
