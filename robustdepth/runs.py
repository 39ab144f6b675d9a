"""Which checkpoint a path means: run directories, pipeline runs and ``best`` / ``last``.

- A checkpoint file is itself.
- A run directory of ``robustdepth train`` holds ``checkpoints/last.pt`` and, with ``train.keep_best``,
  ``checkpoints/best.pt`` (robustdepth.training.validation).
- A run directory of ``robustdepth pipeline`` holds one folder per stage (``teacher/``, ``student/``); the
  model it produced is its final stage, ``student/`` (robustdepth.training.pipeline).
"""

from __future__ import annotations

from pathlib import Path

from robustdepth.training.checkpoint import CheckpointError, resolve_checkpoint

PICKS = ("last", "best")
# Stage folders of a pipeline run, final stage first (robustdepth.training.pipeline).
PIPELINE_STAGES = ("student", "teacher")


def final_stage(path: str | Path) -> Path:
    """A pipeline run directory (stage folders, no ``checkpoints/`` of its own) → its final stage's folder;
    any other path unchanged."""
    path = Path(path)
    if not path.is_dir() or (path / "checkpoints").is_dir() or (path / "last.pt").is_file():
        return path
    for stage in PIPELINE_STAGES:
        if (path / stage / "checkpoints").is_dir():
            return path / stage
    return path


def pick_checkpoint(path: str | Path, pick: str = "last") -> Path:
    """The checkpoint file or run directory to load for ``path`` and ``pick`` (``last`` | ``best``).

    ``last`` returns the (final-stage) run's newest intact checkpoint (``resolve_checkpoint``: ``last.pt``);
    ``best`` returns ``RUN/checkpoints/best.pt`` and is an error when the run kept none.
    """
    if pick not in PICKS:
        raise CheckpointError(f"checkpoint pick {pick!r}: use one of {PICKS}")
    run = final_stage(path)
    if pick == "last":
        return resolve_checkpoint(run)
    if run.is_file():
        raise CheckpointError(f"{run} is a checkpoint file; 'best' needs a run directory")
    folder = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    best = folder / "best.pt"
    if not best.is_file():
        raise CheckpointError(f"{run} has no best.pt: train it with train.val_every=N train.keep_best=true "
                              "(or use the last checkpoint)")
    return best
