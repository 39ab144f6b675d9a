"""No run lost, no crash from bad input: run-directory ownership, resume that obeys its overrides,
divergence advice that works, validated cameras and images, data errors that keep progress."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.checkpoint import (
    CheckpointError,
    load_checkpoint,
    max_abs_weight,
    remove_stale_temp_files,
    save_checkpoint,
)
from robustdepth.cli import main
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.data.base import DataError, parse_intrinsics, read_rgb, unwrap_worker_error
from robustdepth.inference import DepthModel, InferenceError, image_to_tensor, predict_to_folder
from robustdepth.networks import DepthNet
from robustdepth.training.rundir import RunDirError
from robustdepth.training.sampler import EpochSampler
from robustdepth.training.trainer import SANE_WEIGHT_GROWTH, Trainer, train
from tests.conftest import corridor_overrides, write_corridor_sequence


def _cfg(root: Path, **extra: object):
    return load_config("monodepth2", corridor_overrides(root, **extra))


# -- run directory ownership ---------------------------------------------------------------------------
def test_run_dir_is_refused_locked_overwritten_and_pruned_only_of_own_files(corridor: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    old = [ckpts / "last.pt", ckpts / "step_0000012.pt"]
    for path in old:
        path.write_bytes(b"an earlier run's checkpoint")
    cfg = _cfg(corridor, **{"train.keep_checkpoints": 1})
    with pytest.raises(RunDirError, match="already holds a run.*--overwrite"):
        Trainer(cfg, run_dir=run)
    assert all(p.read_bytes() == b"an earlier run's checkpoint" for p in old)  # refused: untouched

    trainer = Trainer(cfg, run_dir=run, overwrite=True)
    try:
        assert not any(p.exists() for p in old)  # the old run is gone, not mixed with the new one
        with pytest.raises(RunDirError, match="in use"):  # a second trainer on a live run directory
            Trainer(cfg, run_dir=run, overwrite=True)
        # pruning deletes this run's older step files only, never someone else's
        ckpts.mkdir()
        foreign = ckpts / "step_0000099.pt"
        foreign.write_bytes(b"not ours")
        own = [ckpts / f"step_{s:07d}.pt" for s in (1, 2)]
        for path in own:
            path.write_bytes(b"ours")
        trainer.own_step_files = list(own)
        trainer._prune()
        assert not own[0].exists() and own[1].exists() and foreign.exists()
    finally:
        trainer.close()
    with pytest.raises(RunDirError, match="already holds a run"):  # lock released; still not for a fresh run
        Trainer(cfg, run_dir=run)


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".step_0000003.pt.tmp-{dead_pid}"
    live = tmp_path / f".last.pt.tmp-{os.getppid()}"  # a live process (our parent) may be writing it now
    keep = tmp_path / "step_0000002.pt"
    for path in (stale, live, keep):
        path.write_bytes(b"x" * 10)
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and keep.exists()


def test_resume_by_directory_falls_back_to_the_newest_intact_step_file(tmp_path: Path) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    payload = {"config": {}, "models": {"depth": {"w": torch.ones(2)}}}
    save_checkpoint(ckpts / "step_0000001.pt", {**payload, "step": 1})
    save_checkpoint(ckpts / "step_0000002.pt", {**payload, "step": 2})
    data = (ckpts / "step_0000002.pt").read_bytes()
    (ckpts / "step_0000002.pt").write_bytes(data[: len(data) // 2])  # torn (killed while a disk lost it)
    with pytest.warns(UserWarning, match="last.pt is missing; using .*step_0000001.pt"):
        assert load_checkpoint(tmp_path / "run")["step"] == 1


# -- resume obeys, divergence advice works ----------------------------------------------------------------
def test_resume_applies_optim_overrides(corridor: Path, tmp_path: Path) -> None:
    cfg = _cfg(corridor, **{"optim.max_steps": 3})
    train(cfg, run_dir=tmp_path, stop_at=1)
    stored = load_checkpoint(tmp_path)
    assert stored["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    resumed_cfg = _cfg(corridor, **{"optim.max_steps": 3, "optim.lr": 3e-3, "optim.weight_decay": 1e-5,
                                    "optim.decay_every_epochs": 0.1, "optim.gamma": 0.5})
    trainer = Trainer(resumed_cfg, run_dir=tmp_path, resume=tmp_path)
    try:
        group = trainer.optimizer.param_groups[0]
        # step 1 of 11 steps/epoch is epoch 0: with decay every 0.1 epochs the factor is 0.5^0 = 1
        assert group["lr"] == pytest.approx(3e-3) and group["weight_decay"] == pytest.approx(1e-5)
        trainer.train_step(next(iter(trainer._batches())))
        assert trainer.scheduler.base_lrs == [pytest.approx(3e-3)]
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3)  # step 2 is still epoch 0
    finally:
        trainer.close()


def test_divergence_advice_resumes_from_sane_weights_at_the_lr_asked_for(
        corridor: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code = main(["train", "monodepth2", *corridor_overrides(corridor, **{
        "optim.max_steps": 6, "optim.lr": 1e30, "train.max_bad_steps": 2}), "--run-dir", str(run)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error: 2 consecutive steps")
    advice = re.search(r"robustdepth train (--resume \S+ optim\.lr=\S+)", err)
    assert advice, err
    good = load_checkpoint(advice.group(1).split()[1])
    start = DepthNet(18, scales=[0, 1, 2, 3])
    bound = SANE_WEIGHT_GROWTH * max(1.0, max_abs_weight(dict(start.named_parameters())))
    assert max_abs_weight(good["models"]["depth"]) <= bound  # not the wrecked weights of the blow-up

    args = shlex.split(advice.group(1))
    args[-1] = "optim.lr=1e-4"  # follow the advice with a learning rate of our choice
    assert main(["train", *args, "optim.max_steps=2"]) == 0
    final = load_checkpoint(run)
    assert final["step"] == 2 and final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert all(bool(torch.isfinite(v).all()) for v in final["models"]["depth"].values() if v.is_floating_point())


def test_good_state_is_not_refreshed_from_blown_up_weights(corridor: Path, tmp_path: Path) -> None:
    trainer = Trainer(_cfg(corridor), run_dir=tmp_path)
    try:
        start = trainer.good_state
        trainer.step = 5
        with torch.no_grad():
            next(trainer.models.depth.parameters()).mul_(1e7)
        trainer._refresh_good_state()
        assert trainer.good_state is start  # wrecked (finite) weights never become the fallback
        with torch.no_grad():
            next(trainer.models.depth.parameters()).div_(1e7)
        trainer._refresh_good_state()
        assert trainer.good_state["step"] == 5
        trainer.skipped_steps = 1  # a step skipped since the previous checkpoint: not sane
        trainer.step = 6
        trainer._refresh_good_state()
        assert trainer.good_state["step"] == 5
        trainer.step = 7  # a clean interval after it: sane again
        trainer._refresh_good_state()
        assert trainer.good_state["step"] == 7
    finally:
        trainer.close()


# -- data errors keep progress -------------------------------------------------------------------------
def _frame_first_used_at(batch: int, frames: int, batch_size: int, seed: int) -> int:
    """A frame the sampler's first epoch reads for the first time in ``batch`` (items are frames 1..n-2)."""
    sampler = EpochSampler(frames - 2, batch_size, seed)
    sampler.set_epoch(0)
    order = [int(i) % (frames - 2) for i in sampler]
    seen: set[int] = set()
    for b in range(batch):
        for item in order[b * batch_size:(b + 1) * batch_size]:
            seen.update({item, item + 1, item + 2})
    fresh = [f for item in order[batch * batch_size:(batch + 1) * batch_size]
             for f in (item, item + 1, item + 2) if f not in seen]
    assert fresh, "no frame is first read in that batch"
    return fresh[0]


def test_worker_data_error_surfaces_as_one_line_after_saving_progress(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = write_corridor_sequence(tmp_path / "seq", frames=10)
    bad = seq / f"{_frame_first_used_at(2, 10, 2, 42):06d}.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but the rest is garbage")
    run = tmp_path / "run"
    code = main(["train", "monodepth2", *corridor_overrides(seq, **{
        "optim.max_steps": 8, "data.num_workers": 2, "data.cache_frames_mb": 0}), "--run-dir", str(run)])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert str(bad) in lines[0] and "Traceback" not in lines[0] and "progress saved at step 2" in lines[0]
    assert load_checkpoint(run)["step"] == 2  # resumable from where the data broke


def test_unwrap_worker_error_keeps_type_and_original_message() -> None:
    wrapped = DataError("Caught DataError in DataLoader worker process 1.\nOriginal Traceback (most recent "
                        "call last):\n  File \"x.py\", line 1\n"
                        "robustdepth.data.base.DataError: cannot read image a.png: bad")
    plain = unwrap_worker_error(wrapped)
    assert type(plain) is DataError and str(plain) == "cannot read image a.png: bad"
    other = ValueError("no worker here")
    assert unwrap_worker_error(other) is other


def test_disk_full_on_save_is_one_line_naming_the_file(corridor: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:778] . unexpected pos 64 vs 0")

    monkeypatch.setattr("robustdepth.checkpoint.torch.save", full_disk)
    code = main(["train", "monodepth2", *corridor_overrides(corridor, **{"optim.max_steps": 1}),
                 "--run-dir", str(tmp_path / "run")])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "step_0000001.pt" in lines[0] and "MiB free" in lines[0], lines


# -- cameras and images ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [
    ([float("nan"), float("nan"), 96, 32], "not finite"),
    ([100, float("inf"), 96, 32], "not finite"),
    ([-100, 100, 96, 32], "focal lengths must be > 0"),
    ([100, 100, 1e9, 32], "beyond"),
])
def test_parse_intrinsics_refuses_non_cameras(value: list[float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_intrinsics(value, "test")


def test_sixteen_bit_and_grayscale_images_convert_to_their_8_bit_rgb(tmp_path: Path) -> None:
    ramp16 = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    rgb = np.asarray(read_rgb(tmp_path / "g16.png"))
    expected = np.round(ramp16.astype(np.float64) / 65535 * 255).astype(np.uint8)
    assert rgb.shape == (48, 64, 3) and np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert 100 < rgb.mean() < 160  # not clipped to white (PIL's own convert gives ~254)
    gray = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g8.png")
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "g8.png")), np.repeat(gray[..., None], 3, axis=2))
    # arrays: uint16 scaled by its full range, grayscale replicated, float 0-255 refused (not read as [0, 1])
    assert torch.allclose(image_to_tensor(ramp16)[1], torch.from_numpy(ramp16 / 65535.0).float())
    assert torch.equal(image_to_tensor(gray)[0], image_to_tensor(gray)[2])
    with pytest.raises(InferenceError, match=r"\[0, 1\].*divide by 255"):
        image_to_tensor(np.full((8, 8, 3), 200.0))
    with pytest.raises(InferenceError, match="NaN"):
        image_to_tensor(torch.full((3, 8, 8), float("nan")))


def test_non_finite_outputs_are_refused_and_unreadable_folder_frames_skipped(tmp_path: Path) -> None:
    net = DepthNet(18, scales=[0]).eval()
    model = DepthModel(net, 64, 192, 0.1, 100.0, torch.device("cpu"))
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.full((64, 192, 3), 120, np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not an image")
    skipped: list[str] = []
    written = predict_to_folder(model, [folder], tmp_path / "out", progress=False, skipped=skipped)
    assert [p.name for p in written] == ["a_depth.npy"] and len(skipped) == 1 and "b.png" in skipped[0]
    with pytest.raises(DataError, match="b.png"):
        predict_to_folder(model, [folder], tmp_path / "strict", progress=False)  # no list: the first error stops
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    with pytest.raises(InferenceError, match="non-finite"):
        model.infer(np.full((64, 192, 3), 120, np.uint8))


def test_predict_cli_skips_unreadable_frames_with_a_summary(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config("monodepth2", ["data.height=64", "data.width=192"])
    ckpt = save_checkpoint(tmp_path / "m.pt", {"config": to_dict(cfg), "step": 0,
                                               "models": {"depth": DepthNet(18, scales=[0, 1, 2, 3]).state_dict()}})
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("a", "c"):
        Image.fromarray(np.full((64, 192, 3), 90, np.uint8)).save(folder / f"{name}.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    assert main(["predict", str(ckpt), str(folder), "--out", str(tmp_path / "out"), "--precision", "fp32"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 depth map(s)" in captured.out
    assert "skipped 1 unreadable frame(s)" in captured.err and "b.png" in captured.err
    assert main(["predict", str(ckpt), str(folder), "--out", str(tmp_path / "o2"), "--strict"]) == 2


def test_checkpoint_reader_names_what_a_file_is(tmp_path: Path) -> None:
    png = tmp_path / "frame.pt"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png, format="PNG")
    with pytest.raises(CheckpointError, match="PNG image, not a torch file"):
        load_checkpoint(png)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_non_finite_warp_grid_gives_nan_output_and_a_safe_backward() -> None:
    """A NaN pose (or K) must turn the warped pixels NaN — so the loss is non-finite and the step is skipped —
    instead of a finite loss whose backward through grid_sample crashes the process (a torch CPU bug)."""
    from robustdepth.geometry import Camera, Pose, warp

    source = torch.rand(1, 3, 8, 12, requires_grad=True)
    depth = torch.full((1, 1, 8, 12), 5.0, requires_grad=True)
    camera = Camera(torch.tensor([[10.0, 0, 6], [0, 10, 4], [0, 0, 1]])[None])
    matrix = torch.eye(4)[None].clone()
    matrix[0, 0, 3] = float("nan")
    out = warp(source, depth, Pose(matrix), camera)
    assert bool(torch.isnan(out).all())
    out.nan_to_num(0.0).sum().backward()  # would be a segmentation fault with the NaN grid
    assert bool(torch.isfinite(source.grad).all())
    finite = warp(source, depth, Pose(torch.eye(4)[None]), camera)
    assert torch.allclose(finite, source, atol=1e-5)  # identity pose: the plain path, unchanged
