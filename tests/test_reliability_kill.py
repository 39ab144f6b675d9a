"""``kill -9`` mid-save and mid-run, then resume by directory: the same weights and optimiser state as a run
that was never interrupted, and no temporary file left behind.

Real subprocesses (``python -m robustdepth.cli train``) are killed with SIGKILL at moments read off the
checkpoint folder: (1) while the first ``last.pt`` is being written (``step_0000001.pt`` is complete,
``last.pt`` does not exist yet: resume must fall back to the step file), (2) after the step-2 checkpoint,
while step 3 trains (or, on a fast machine, while its checkpoint is written). An uninterrupted reference
run goes in parallel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustdepth.checkpoint import load_checkpoint
from tests.conftest import REPO, corridor_overrides

TIMEOUT_S = 300


def _start(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "robustdepth.cli", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], ready: callable) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every few ms); fail if it ends first."""
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before the kill point: "
                        f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kill point never reached")
        time.sleep(0.003)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _temps(folder: Path, name: str = "") -> list[Path]:
    return list(folder.glob(f".{name}*.tmp-*")) if folder.is_dir() else []


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()[-3000:]


@pytest.mark.slow
def test_sigkill_mid_save_and_mid_run_then_resume_equals_an_uninterrupted_run(corridor: Path, tmp_path: Path) -> None:
    overrides = corridor_overrides(corridor, **{"optim.max_steps": 3, "train.ckpt_every": 1})
    # checkpoint writes do not touch the training state: the reference saves only at its end
    reference = _start("monodepth2", *overrides, "train.ckpt_every=1000", "--run-dir", str(tmp_path / "reference"))
    run = tmp_path / "run"
    ckpts = run / "checkpoints"

    first = _start("monodepth2", *overrides, "--run-dir", str(run))
    _kill_when(first, lambda: (ckpts / "step_0000001.pt").is_file() and bool(_temps(ckpts, "last.pt")))
    assert not (ckpts / "last.pt").exists() and _temps(ckpts)  # torn mid-save: only the step file is whole

    def step_two_saved() -> bool:
        last, step2 = ckpts / "last.pt", ckpts / "step_0000002.pt"
        return (step2.is_file() and last.is_file() and not _temps(ckpts)
                and last.stat().st_mtime_ns >= step2.stat().st_mtime_ns)

    second = _start("--resume", str(run))  # by directory: falls back to step_0000001.pt
    _kill_when(second, step_two_saved)

    _finish(_start("--resume", str(run)))
    _finish(reference)
    assert not _temps(ckpts), "temporary files of killed writers were left behind"
    a, b = load_checkpoint(tmp_path / "reference"), load_checkpoint(run)
    assert a["step"] == b["step"] == 3
    for net in ("depth", "pose"):
        for key, value in a["models"][net].items():
            assert torch.equal(value, b["models"][net][key]), f"{net}.{key} differs from the uninterrupted run"
    for index, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][key]), f"optimizer {index}.{key} differs"
