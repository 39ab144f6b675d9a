"""Run under torchrun by tests/test_training.py: a few data-parallel steps, then each rank dumps its
weights so the test can check that gradient averaging kept every process identical."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from robustdepth.configure import load_config
from robustdepth.training.trainer import Trainer


def main(root: str, out: str) -> None:
    overrides = [f"data.root={root}", "data.dataset=folder", "data.height=64", "data.width=192",
                 "data.num_workers=0", "optim.batch_size=2", "optim.max_steps=3", "train.progress=false",
                 "train.log_every=1000", "train.image_every=100000", "train.ckpt_every=100000"]
    cfg = load_config("monodepth2", overrides)
    trainer = Trainer(cfg, run_dir=Path(out) / "run")
    initial = {k: v.clone() for k, v in trainer.models.state_dict().items()}
    trainer.fit()
    rank = dist.get_rank()
    torch.save({"final": trainer.models.state_dict(), "initial": initial, "world": dist.get_world_size(),
                "samples": trainer.sampler.steps_per_epoch}, Path(out) / f"rank{rank}.pt")
    trainer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
