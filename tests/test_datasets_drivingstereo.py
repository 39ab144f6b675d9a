"""DrivingStereo weather subsets: the real split lists (../shared/realdata) and a hand-checked evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustdepth.configure import load_config
from robustdepth.data import build_dataset
from robustdepth.data.drivingstereo import WEATHERS
from tests.test_datasets_kitti import REAL, assert_metrics, constant_depth_checkpoint, hand_metrics, run_eval

LISTS = REAL / "fog_foggycityscapes_robustdepth" / "splits"


def ds_root(tmp: Path, names: dict[str, list[str]]) -> Path:
    for weather, files in names.items():
        (tmp / weather / "left-image-full-size").mkdir(parents=True)
        (tmp / weather / "depth-map-full-size").mkdir(parents=True)
        for name in files:
            Image.new("RGB", (1762, 800), (100, 110, 120)).save(tmp / weather / "left-image-full-size" / name)
            gt = np.zeros((800, 1762), np.uint16)
            gt[100, 100], gt[400, 800], gt[700, 1700] = 4 * 256, 8 * 256, 16 * 256
            Image.fromarray(gt).save(tmp / weather / "depth-map-full-size" / name)
    return tmp


@pytest.mark.skipif(not LISTS.is_dir(), reason="../shared/realdata DrivingStereo split lists not present")
def test_real_weather_lists_have_500_frames_and_are_read(tmp_path: Path) -> None:
    for weather in WEATHERS:
        names = [n for n in (LISTS / weather / "test_files.txt").read_text().split() if n]
        assert len(names) == 500 and names[0].endswith(".png")
    first = (LISTS / "rainy" / "test_files.txt").read_text().split()[:2]
    root = ds_root(tmp_path / "ds", {"rainy": first})
    (tmp_path / "lists" / "rainy").mkdir(parents=True)
    (tmp_path / "lists" / "rainy" / "test_files.txt").write_text("\n".join(first))
    cfg = load_config("monodepth2", ["data.dataset=drivingstereo", f"data.root={root}", "data.eval_conditions=[rainy]",
                                     f"data.options={{splits_dir: {tmp_path / 'lists'}}}"])
    items = build_dataset(cfg, "test", train=False).items
    assert [it.sequence.names[it.index] for it in items] == first


def test_eval_drivingstereo_reproduces_hand_metrics(tmp_path: Path) -> None:
    root = ds_root(tmp_path / "ds", {"foggy": ["a.png"], "rainy": ["b.png"]})
    over = ["data.dataset=drivingstereo", f"data.root={root}", "data.num_workers=0"]
    ckpt = constant_depth_checkpoint(tmp_path / "ck.pt", 10.0, over)
    res = run_eval(ckpt, "drivingstereo", tmp_path / "r.json", [])
    assert res["counts"] == {"rainy": 1, "foggy": 1, "all": 2}
    assert_metrics(res["foggy"], hand_metrics([4, 8, 16], [8, 8, 8]))  # median scaling: ratio 8/10
