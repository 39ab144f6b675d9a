"""The documented command lines work as written.

Every fenced ``bash`` block that follows the line ``<!-- tested by tests/test_readme_commands.py -->`` in
README.md or docs/ is read, and each of its ``robustdepth …`` lines runs (in order, in-process, identical lines
once) in a fresh directory that holds what the docs assume a user has: ``my_drive/`` (frames, intrinsics.txt,
depth/), ``drive.mp4`` and ``frames.txt``. The tiny world and the run are made by the block's own commands.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from robustdepth.cli import main
from tests.conftest import write_corridor_sequence

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- tested by tests/test_readme_commands.py -->"
DOCS = (REPO / "README.md", REPO / "docs" / "usage.md")


def marked_commands(text: str) -> list[str]:
    """``robustdepth`` lines of the fenced bash blocks right after a MARKER line (comments stripped)."""
    commands = []
    for match in re.finditer(re.escape(MARKER) + r"\s*```bash\n(.*?)```", text, flags=re.S):
        for line in match.group(1).splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("robustdepth "):
                commands.append(line)
    return commands


def all_tested_commands() -> list[str]:
    seen: dict[str, None] = {}
    for doc in DOCS:
        for command in marked_commands(doc.read_text(encoding="utf-8")):
            seen.setdefault(command, None)
    return list(seen)


def test_the_docs_mark_a_tested_block_covering_every_feature() -> None:
    commands = all_tested_commands()
    joined = "\n".join(commands)
    assert MARKER in (REPO / "README.md").read_text(encoding="utf-8")
    for needle in ("world generate", "train.keep_best=true", "--pick best", "data check my_drive --dataset folder",
                   "--protocol generic", "--crop-to-aspect", "--scaling none", "data.options.condition=",
                   "--format npy,png16,gray,color", "--pointcloud", "--video-out", "frames.txt"):
        assert needle in joined, needle


def _user_files(cwd: Path) -> None:
    """What the documented commands assume the user has: a folder of frames, a video and a list."""
    drive = write_corridor_sequence(cwd / "my_drive", frames=6)
    writer = cv2.VideoWriter(str(cwd / "drive.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (192, 64))
    for i in range(4):
        writer.write(cv2.cvtColor(np.asarray(Image.open(drive / f"{i:06d}.png")), cv2.COLOR_RGB2BGR))
    writer.release()
    (cwd / "frames.txt").write_text("my_drive/000000.png\nmy_drive/000003.png\n")


def test_documented_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _user_files(tmp_path)
    for command in all_tested_commands():
        assert main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "runs" / "tiny" / "checkpoints" / "best.pt").is_file()
    results = sorted(p.name for p in (tmp_path / "runs" / "tiny" / "eval").glob("*.json"))
    assert len(results) == 3  # world (best), folder generic with crop, folder generic metric: none overwritten
    assert {p.name for p in (tmp_path / "preds").iterdir()} >= {"000000_depth16.png", "000000_gray.png",
                                                                 "000000.ply", "000000_depth.npy", "000000_disp.png"}
    cap = cv2.VideoCapture(str(tmp_path / "preds_video" / "side_by_side.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6  # 4 video frames + 2 listed frames
    cap.release()
