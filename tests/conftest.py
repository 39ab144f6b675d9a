"""Shared fixtures: the analytic driving corridor (robustdepth.data.corridor: exact depth, poses and K),
two-process launches, the real frames' folder."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from robustdepth.data.corridor import (  # noqa: F401  (re-exported: the tests import them from here)
    corridor_overrides,
    write_corridor_sequence,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the scripts are not a package), imported once per call."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def corridor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-frame corridor sequence at 64×192 (shared by the training tests)."""
    return write_corridor_sequence(tmp_path_factory.mktemp("corridor") / "seq", frames=24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_two_processes(worker: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tests/<worker>`` under torchrun with 2 CPU processes (gloo), one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(REPO / "tests" / worker), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
