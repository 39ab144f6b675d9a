"""Degraded-copy supply: online and offline modes fill the same slots, aligned and reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustdepth.config import ConfigError
from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.base import DataError, color_key
from robustdepth.degrade.supply import write_offline_set
from tests.conftest import corridor_overrides, write_corridor_sequence

RULES = "[{condition: rain, p: 0.5}, {condition: night, p: 0.33}]"


@pytest.fixture(scope="module")
def seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corridor_sequence(tmp_path_factory.mktemp("supply") / "seq", frames=8)


def _cfg(root: Path, **extra: object):
    return load_config("monodepth2", corridor_overrides(root, **extra))


def test_online_supply_fills_slots_reproducibly(seq: Path) -> None:
    ds = build_dataset(_cfg(seq, **{"degrade.mode": "online", "degrade.rules": RULES}), "train", train=True)
    labels = []
    for i in range(len(ds)):
        s = ds[i]
        assert s["degraded"].shape == s[color_key(0)].shape
        labels.append(s["degraded_condition"])
        if s["is_degraded"]:
            assert not torch.equal(s["degraded"], s[color_key(0)])
        else:
            assert torch.equal(s["degraded_aug"], s[color_key(0, aug=True)])
    assert torch.equal(ds[3]["degraded"], ds[3]["degraded"])  # same (seed, epoch, index) -> same image
    # the overwrite-rule frequencies are DegradeSampler's (tests/test_degrade.py); here: rules are used
    assert set(labels) <= {"rain", "night", "clear"} and len(set(labels)) > 1
    # the eval split never gets degraded copies
    assert "degraded" not in build_dataset(_cfg(seq, **{"degrade.mode": "online", "degrade.rules": RULES}),
                                           "test", train=False)[0]


def test_offline_set_round_trip(seq: Path, tmp_path: Path) -> None:
    cfg = _cfg(seq)
    out = write_offline_set(cfg, tmp_path / "deg", ["night"], progress=False)
    assert (out / "degraded.json").is_file() and len(list((out / "seq" / "night").glob("*.png"))) == 6
    mtime = (out / "seq" / "night" / "000001.png").stat().st_mtime
    write_offline_set(cfg, out, ["night"], progress=False)  # resumable: nothing rewritten
    assert (out / "seq" / "night" / "000001.png").stat().st_mtime == mtime
    ds = build_dataset(_cfg(seq, **{"degrade.mode": "offline", "degrade.offline_root": str(out),
                                    "degrade.rules": "[{condition: night, p: 1.0}]", "augment.flip_p": 1.0}),
                       "train", train=True)
    s = ds[0]
    assert s["is_degraded"] and s["degraded_condition"] == "night"
    assert s["degraded"].mean() < 0.6 * s[color_key(0)].mean()  # night is darker
    # flipped with the sample, so still pixel-aligned: compare image gradients' sign structure
    unflipped = build_dataset(_cfg(seq, **{"degrade.mode": "offline", "degrade.offline_root": str(out),
                                           "degrade.rules": "[{condition: night, p: 1.0}]",
                                           "augment.flip_p": 0.0}), "train", train=True)[0]
    assert torch.equal(s["degraded"], unflipped["degraded"].flip(-1))


def test_offline_errors(seq: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline_root"):
        _cfg(seq, **{"degrade.mode": "offline", "degrade.rules": "[{condition: night, p: 1.0}]"})
    with pytest.raises(DataError, match="no degraded.json"):
        build_dataset(_cfg(seq, **{"degrade.mode": "offline", "degrade.offline_root": str(tmp_path),
                                   "degrade.rules": "[{condition: night, p: 1.0}]"}), "train", train=True)
    with pytest.raises(ConfigError, match="needs degrade.rules"):
        _cfg(seq, **{"degrade.mode": "online"})
