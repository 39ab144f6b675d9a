"""benchmarks/gpu_table.sh: the contracts that hold without a GPU (its full run is a device check; its smoke run,
``QUICK=1 DEVICE=cpu``, takes minutes and is run by hand — see the script's header).

A lent machine starts bare and returns only what the script leaves in ``$OUT``, so what matters here is that it
refuses clearly where it cannot run, and that its deadline stops it before a seed is started, not inside one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_table.sh"


def _run(tmp_path: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with this interpreter first on PATH (it calls ``python3``) and its tables under tmp_path."""
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "RESULTS": str(tmp_path / "results"), "RUNS": str(tmp_path / "runs"), **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot be shown")
def test_asking_for_cuda_without_one_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    done = _run(tmp_path, REPO, DEVICE="cuda")
    assert done.returncode != 0
    assert "DEVICE=cuda but torch" in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_it_refuses_to_run_outside_the_repository_root(tmp_path: Path) -> None:
    done = _run(tmp_path, tmp_path, DEVICE="cpu", QUICK="1")
    assert done.returncode == 2
    assert "run me from the repository root" in done.stderr


def test_a_spent_deadline_starts_no_seed_and_says_which_seeds_the_table_holds(tmp_path: Path) -> None:
    done = _run(tmp_path, REPO, DEVICE="cpu", QUICK="1", DEADLINE_S="0")
    assert done.returncode == 0, done.stderr
    assert "deadline reached before seed 42" in done.stdout
    assert "the table holds seeds none" in done.stdout
    assert not (tmp_path / "runs").exists()
    log = (tmp_path / "results" / "gpu_table.log").read_text()
    assert "torch" in log and "on cpu" in log  # the device line is in the log that comes back
