"""A run directory belongs to one run: refuse to clobber, lock for the trainer's life, prune only our files.

``robustdepth train`` writes ``config.yaml``, ``tensorboard/`` and ``checkpoints/`` into its run
directory (default ``runs/<train.name>``, so re-running a recipe with another override lands in the
same folder). The rules, applied by :class:`~robustdepth.training.trainer.Trainer`:

* a folder that already holds checkpoints is refused unless the trainer *resumes* that run or is told
  to *overwrite* it (which first deletes the old run's config, logs and checkpoints);
* an exclusive ``fcntl`` lock on ``RUN/.lock`` is held while the trainer lives, so a second trainer
  on the same folder (another terminal, a second job) stops with a message instead of interleaving;
* temporary files of checkpoint writers that were killed are removed once the lock is held.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import IO

from robustdepth.checkpoint import remove_stale_temp_files

LOCK_NAME = ".lock"
RUN_FILES = ("config.yaml", "tensorboard", "checkpoints")  # what a trainer writes (and --overwrite removes)


class RunDirError(ValueError):
    """A run directory that this trainer may not use (held by another run or another process)."""


def existing_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files (``*.pt``) already in ``run_dir/checkpoints``."""
    folder = run_dir / "checkpoints"
    return sorted(folder.glob("*.pt")) if folder.is_dir() else []


def check_run_dir(run_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """Raise :class:`RunDirError` when a fresh run would clobber the run already in ``run_dir``.

    Resuming is allowed when the checkpoint resumed from lives in ``run_dir`` (the same run); resuming
    a checkpoint from elsewhere into a folder holding another run needs ``overwrite`` like a fresh run.
    Read-only: it creates nothing.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a folder")
    found = existing_checkpoints(run_dir)
    if not found or overwrite:
        return
    if resume is not None and _inside(Path(resume), run_dir):
        return
    what = "resume it with --resume " + str(run_dir) if resume is None else "choose another --run-dir"
    raise RunDirError(f"run directory {run_dir} already holds a run ({len(found)} checkpoint file(s), e.g. "
                      f"{found[-1].name}); {what}, or replace it with --overwrite")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``RUN/.lock``; released by :meth:`release` or process exit."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOCK_NAME
        self._fh: IO[str] | None = open(self.path, "a+")  # noqa: SIM115 - held open for the trainer's life
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            self._fh = None
            raise RunDirError(f"run directory {run_dir} is in use by {holder} (lock {self.path}); wait for it "
                              "to finish or use another --run-dir") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}\n")
        self._fh.flush()

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def claim_run_dir(run_dir: Path, resume: Path | None, overwrite: bool) -> RunLock:
    """Lock ``run_dir``, re-check ownership under the lock, clear it when overwriting, drop stale temp files."""
    lock = RunLock(run_dir)
    try:
        check_run_dir(run_dir, resume, overwrite)
        if overwrite and resume is None:
            for name in RUN_FILES:
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        remove_stale_temp_files(run_dir / "checkpoints")
    except BaseException:
        lock.release()
        raise
    return lock
