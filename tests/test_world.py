"""The embedded all-weather world: determinism, file interface, exact geometry and condition physics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robustdepth.world as world
from robustdepth.world import scene as S
from robustdepth.world.checks import photometric_warp_error
from robustdepth.world.cli import main as world_cli
from robustdepth.world.presets import CONDITIONS, PRESETS
from robustdepth.world.sequence import SequenceRenderer

H, W = PRESETS["tiny"].height, PRESETS["tiny"].width


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return world.generate("tiny", 0, tmp_path_factory.mktemp("world") / "tiny", progress=False)


def _sequences(root: Path, split: str) -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_is_byte_identical_for_same_seed_and_differs_for_another(root, tmp_path):
    again = world.generate("tiny", 0, tmp_path / "again", progress=False)
    a, b = _files(root), _files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = world.generate("tiny", 1, tmp_path / "other", progress=False)
    img = "test/seq_000/clear/image/000000.png"
    assert (other / img).read_bytes() != a[img]


def test_layout_formats_and_intrinsics(root):
    info = json.loads((root / "world.json").read_text())
    assert info["preset"] == "tiny" and info["seed"] == 0 and info["complete"] is True
    assert set(info["splits"]) == {"train", "val", "test"}
    for split, names in info["splits"].items():
        assert names == [p.name for p in _sequences(root, split)]
        spec = PRESETS["tiny"].splits[split]
        assert len(names) == spec.sequences
        for seq in _sequences(root, split):
            meta = json.loads((seq / "meta.json").read_text())
            n = meta["num_frames"]
            assert n == spec.frames and meta["resolution"] == [H, W]
            assert meta["conditions"] == (["clear"] if split == "train" else list(CONDITIONS))
            assert set(meta["severity"]) == set(meta["conditions"])
            K = np.loadtxt(seq / "intrinsics.txt")
            np.testing.assert_allclose(K, [[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H], [0, 0, 1]], atol=1e-5)
            poses = np.loadtxt(seq / "poses.txt")
            assert poses.shape == (n, 12)
            rot = poses.reshape(n, 3, 4)[:, :, :3]
            np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (n, 3, 3)),
                                       atol=1e-6)
            for i in (0, n - 1):
                ids = np.asarray(Image.open(seq / "objects" / f"{i:06d}.png"))
                assert ids.dtype == np.uint16 and ids.shape == (H, W)
                for cond in meta["conditions"]:
                    img = Image.open(seq / cond / "image" / f"{i:06d}.png")
                    assert img.mode == "RGB" and img.size == (W, H)
                    depth = np.load(seq / cond / "depth" / f"{i:06d}.npy")
                    assert depth.dtype == np.float32 and depth.shape == (H, W)
                    assert np.isfinite(depth).all() and (depth >= 0).all()


def test_sky_has_no_depth_and_no_id_and_objects_are_instances(root):
    seq = _sequences(root, "test")[0]
    ids = np.asarray(Image.open(seq / "objects" / "000000.png")).astype(np.int64)
    depth = np.load(seq / "clear" / "depth" / "000000.npy")
    assert ((depth == 0) == (ids == 0)).all()
    assert (depth == 0)[0].mean() > 0.0 or (depth == 0).any()  # some sky is visible
    assert (ids[-1] == S.ROAD_ID).any()  # the bottom row sees the road
    assert len(np.unique(ids[ids >= S.FIRST_INSTANCE_ID])) >= 5  # buildings, cars, trees… each its own id


def test_conditions_are_pixel_aligned(root):
    for seq in _sequences(root, "test") + _sequences(root, "val"):
        meta = json.loads((seq / "meta.json").read_text())
        for i in range(meta["num_frames"]):
            ref = np.load(seq / "clear" / "depth" / f"{i:06d}.npy")
            for cond in CONDITIONS[1:]:
                assert np.array_equal(np.load(seq / cond / "depth" / f"{i:06d}.npy"), ref), (seq, cond, i)
        clear = np.asarray(Image.open(seq / "clear" / "image" / "000000.png"), np.float32)
        for cond in CONDITIONS[1:]:  # …while the images really differ
            other = np.asarray(Image.open(seq / cond / "image" / "000000.png"), np.float32)
            assert np.abs(other - clear).mean() > 10, cond


def test_warp_with_gt_depth_and_pose_reproduces_the_clear_frame():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: one thread is faster on a shared machine
    try:
        err = photometric_warp_error(192, 640)
        coarse = photometric_warp_error(64, 192, seed=4)
    finally:
        torch.set_num_threads(threads)
    assert err < 0.02, f"photometric warp error {err:.4f} at 192×640"
    assert coarse < 0.03, f"photometric warp error {coarse:.4f} at 64×192"


def test_fog_contrast_falls_with_depth(root):
    seq = _sequences(root, "test")[0]
    air = None
    near, far = [], []
    for i in range(3):
        fog = np.asarray(Image.open(seq / "fog" / "image" / f"{i:06d}.png"), np.float32) / 255
        clear = np.asarray(Image.open(seq / "clear" / "image" / f"{i:06d}.png"), np.float32) / 255
        depth = np.load(seq / "fog" / "depth" / f"{i:06d}.npy")
        air = fog[depth == 0].mean(0)  # the sky IS the airlight in fog
        ratio = np.abs(fog - air).mean(-1) / (np.abs(clear - air).mean(-1) + 0.05)
        near.append(ratio[(depth > 0) & (depth < 10)].mean())
        far.append(ratio[depth > 35].mean())
    assert np.mean(far) < 0.6 * np.mean(near), (near, far)


def test_night_is_darker_than_clear(root):
    for seq in _sequences(root, "test"):
        clear = np.asarray(Image.open(seq / "clear" / "image" / "000002.png"), np.float32)
        night = np.asarray(Image.open(seq / "night" / "image" / "000002.png"), np.float32)
        assert night.mean() < 0.6 * clear.mean()


def test_static_flags_match_speeds_and_poses(root):
    trajs = [S.build_trajectory(5, S.build_scene(5, -40, 400).road, 60, stop_probability=1.0)]
    for seq in _sequences(root, "train") + _sequences(root, "test"):
        meta = json.loads((seq / "meta.json").read_text())
        poses = np.loadtxt(seq / "poses.txt").reshape(-1, 3, 4)
        trajs.append(S.Trajectory(poses=poses, speeds=np.array(meta["speeds"]), static=np.array(meta["static"]),
                                  lane_offset=0.0))
    assert trajs[0].static.sum() >= 3  # a forced stop exists
    for traj in trajs:
        speeds, static = traj.speeds, traj.static
        assert ((speeds == 0) == static).all()
        assert (speeds >= 0).all() and (speeds <= 15).all() and speeds.max() >= 4
        step = np.linalg.norm(traj.poses[1:, :3, 3] - traj.poses[:-1, :3, 3], axis=1)
        moving = ~static[:-1]
        assert (step[~moving] < 1e-9).all()
        np.testing.assert_allclose(step[moving], speeds[:-1][moving] / S.FPS, rtol=0.03, atol=0.01)


def test_refuses_to_overwrite_another_world(root):
    with pytest.raises(world.WorldExistsError, match="seed=0"):
        world.generate("tiny", 5, root, progress=False)
    with pytest.raises(ValueError, match="unknown world preset 'huge'"):
        world.generate("huge", 0, root, progress=False)


def test_show_writes_a_gallery(root, tmp_path):
    out = tmp_path / "gallery.png"
    assert world_cli(["show", str(root), "--out", str(out), "--frame", "1"]) == 0
    img = Image.open(out)
    assert img.size[0] > 3 * W and img.size[1] > 5 * H
    with pytest.raises(FileNotFoundError, match="no_such"):
        world.show(root, out, sequence="no_such")


def test_renderer_rejects_bad_requests():
    scene, traj = S.build_sequence(2, 4, 0.0)
    renderer = SequenceRenderer(scene, traj, 32, 96)
    with pytest.raises(ValueError, match="drizzle"):
        renderer.render(0, ("drizzle",))
    with pytest.raises(IndexError, match="frame 9"):
        renderer.render(9)


_CHURN = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from robustdepth.world.writer import retain_freed_memory
    assert retain_freed_memory()
def frame():  # full-frame-sized temporaries of varying sizes, as one rendered frame allocates and frees
    keep = []
    for k in range(40):
        keep.append(torch.ones(300_000 + 37_000 * (k % 7))[:10] + torch.ones(500_000 + 11_000 * (k % 5))[:10])
        keep.append(torch.ones(700_000 + 5_000 * k))
        del keep[:-3]
frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_retained_heap_stops_the_page_fault_churn_of_frame_temporaries():
    """The renderer's allocator setting (measured ~15 % of a night frame's CPU time) keeps freed temporaries'
    pages: a second identical frame faults in far fewer pages than with the C library's defaults."""
    import ctypes
    import ctypes.util
    import subprocess
    import sys

    libc = ctypes.util.find_library("c")
    if sys.platform != "linux" or not libc or not hasattr(ctypes.CDLL(libc), "mallopt"):
        pytest.skip("needs glibc's mallopt")

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    default, retained = faults("default"), faults("retain")
    assert retained < default / 3, (retained, default)


def test_road_lateral_matches_its_centre_line_and_heading():
    """``Road.lateral`` shares the sines and cosines of centre_x and heading; it must stay their exact
    composition (the renderer's ground materials depend on it)."""
    road = S.build_sequence(7, 4, 0.0)[0].road
    x, z = torch.randn(1000) * 10, torch.rand(1000) * 300 - 20
    assert torch.equal(road.lateral(x, z), (x - road.centre_x(z)) * torch.cos(road.heading(z)))


def test_ensure_world_reuses_a_finished_world_and_renders_an_unfinished_one(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Demo and benchmarks share robustdepth.world.ensure_world: only world.json's ``complete`` flag (for the same
    preset and seed) means "reuse"; an interrupted render (complete: false) or another seed renders again."""
    import json

    from robustdepth.world import writer

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(writer, "generate", lambda preset, seed, out, **kw: calls.append((preset, seed)) or out)
    root = tmp_path / "w"
    root.mkdir()
    (root / "world.json").write_text(json.dumps({"preset": "tiny", "seed": 0, "complete": True}))
    assert writer.ensure_world("tiny", 0, root) == root and calls == []
    writer.ensure_world("tiny", 1, root)
    (root / "world.json").write_text(json.dumps({"preset": "tiny", "seed": 0, "complete": False}))
    writer.ensure_world("tiny", 0, root)
    assert calls == [("tiny", 1), ("tiny", 0)]
