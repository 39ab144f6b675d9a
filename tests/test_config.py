"""Recipes: schema defaults, base chains, overrides, and clear errors for unknown keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from robustdepth.config import ConfigError, to_dict
from robustdepth.configure import apply_overrides, config_from_dict, load_config


def test_monodepth2_recipe_has_md2_defaults() -> None:
    cfg = load_config("monodepth2")
    assert cfg.losses.photometric.weight == 1.0
    assert cfg.losses.smoothness.weight == pytest.approx(1e-3)
    assert cfg.losses.velocity.weight == 0.0
    assert list(cfg.data.frame_ids) == [0, -1, 1]
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.decay_every_epochs == 15


def test_overrides_are_typed() -> None:
    cfg = load_config("monodepth2", ["optim.lr=2e-4", "data.height=64", "train.compile=true"])
    assert cfg.optim.lr == pytest.approx(2e-4) and cfg.data.height == 64 and cfg.train.compile is True
    with pytest.raises(ConfigError, match=r"optim.lr"):
        load_config("monodepth2", ["optim.lr=fast"])


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        load_config("monodepth2", ["optim.learning_rate=1"])
    message = str(err.value)
    assert "optim.learning_rate" in message and "lr" in message and "batch_size" in message
    with pytest.raises(ConfigError, match=r"losses.photometirc"):
        load_config("monodepth2", ["losses.photometirc.weight=0"])


def test_unknown_key_in_recipe_file_names_the_file(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("base: monodepth2\ntrain:\n  nmae: typo\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.nmae"):
        load_config(recipe)


def test_base_chain_and_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: monodepth2\noptim:\n  lr: 3.0e-4\n")
    (tmp_path / "b.yaml").write_text("base: a\noptim:\n  batch_size: 3\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.optim.batch_size == 3
    assert cfg.losses.photometric.weight == 1.0
    (tmp_path / "c.yaml").write_text("base: d\n")
    (tmp_path / "d.yaml").write_text("base: c\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "c.yaml")


def test_validation_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        load_config("monodepth2", ["data.width=100"])
    with pytest.raises(ConfigError, match="frame 0"):
        load_config("monodepth2", ["data.frame_ids=[-1,0,1]"])
    with pytest.raises(ConfigError, match="recipe 'nope' not found"):
        load_config("nope")
    with pytest.raises(ConfigError, match=r"section.key=value"):
        load_config("monodepth2", ["lr"])


def test_round_trip_through_dict_and_overrides() -> None:
    cfg = load_config("monodepth2", ["optim.batch_size=5"])
    again = config_from_dict(to_dict(cfg))
    assert to_dict(again) == to_dict(cfg)
    assert apply_overrides(again, ["optim.max_steps=7"]).optim.max_steps == 7


def test_stored_configs_with_retired_keys_load_for_inference_only() -> None:
    stored = to_dict(load_config("monodepth2"))
    stored["losses"]["retired_term"] = {"weight": 1.0}
    stored["model"]["old_knob"] = 3
    with pytest.raises(ConfigError, match="old_knob|retired_term"):
        config_from_dict(stored)  # resuming training stays strict
    with pytest.warns(UserWarning, match=r"model\.old_knob, losses\.retired_term"):
        cfg = config_from_dict(stored, strict=False)
    assert cfg.losses.photometric.weight == 1.0 and "old_knob" not in cfg.model


def test_every_shipped_recipe_loads_and_overlays_compose() -> None:
    recipes = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
    assert {"monodepth2", "md4all_dd", "acdepth", "rosam", "sec", "all", "fast"} <= set(recipes)
    for name in recipes:
        load_config(name)
    fast = load_config("acdepth+sec+fast")
    assert (fast.train.precision, fast.train.channels_last) == ("bf16", True)
    assert fast.optim.fused and not load_config("acdepth").optim.fused
    assert fast.optim.lr == load_config("acdepth").optim.lr  # the overlay merges into optim, it does not replace it
    assert fast.losses.sec.weight > 0 and fast.losses.ogd_rank.weight == load_config("acdepth").losses.ogd_rank.weight


COMPONENT_ERRORS = [  # (recipe, override, the key the error names): one per component with static checks
    ("rosam", "providers.rosam.ore_pose=bogus", "providers.rosam.ore_pose"),
    ("rosam", "providers.masks.world_sky=bogus", "providers.masks.world_sky"),
    ("rosam", "losses.rosam_src.scales=[7]", "losses.rosam_src.scales"),
    ("sec_monodepth2", "losses.sec.mode=bogus", "losses.sec.mode"),
    ("sec_monodepth2", "providers.latency_queue.trigger=bogus", "providers.latency_queue.trigger"),
    ("md4all_dd", "losses.distill.resolution=bogus", "losses.distill.resolution"),
    ("md4all_dd", "providers.teacher.sees=bogus", "providers.teacher.sees"),
    ("syn2real_ra", "providers.day_model.stage=bogus", "providers.day_model.stage"),
    ("acdepth", "providers.depth_prior.source=bogus", "providers.depth_prior.source"),
    ("acdepth", "providers.depth_prior.source=oracle", "data.load_depth_gt"),
]


@pytest.mark.parametrize(("recipe", "override", "key"), COMPONENT_ERRORS)
def test_component_config_errors_are_raised_when_the_config_is_built(recipe: str, override: str, key: str) -> None:
    """A bad value of an enabled loss term or provider is a ConfigError from load_config itself (so
    ``robustdepth config`` and every loader reject it before any work), naming the key."""
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(recipe, [override])


def test_a_disabled_components_section_is_not_checked() -> None:
    """Only enabled components are checked: a recipe without RoSAMDepth does not care about its keys."""
    cfg = load_config("monodepth2", ["providers.rosam.ore_pose=bogus", "losses.sec.mode=bogus"])
    assert cfg.providers.rosam.ore_pose == "bogus"


@pytest.mark.parametrize(("rules", "key"), [
    ("[{condition: night, p: 1.5}]", "degrade.rules[0].p=1.5"),
    ("[{condition: rain, p: 0.5}, {condition: fog, p: 0.5, severity: [0.8, 0.2]}]", "degrade.rules[1].severity"),
    ("[{condition: snow, p: 0.5, severity: [0.5]}]", "degrade.rules[0].severity"),
])
def test_degradation_rules_are_checked_when_the_config_is_built(rules: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config("md4all_dd", [f"degrade.rules={rules}"])
