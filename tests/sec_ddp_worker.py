"""Run under torchrun by tests/test_sec.py: a few data-parallel SEC-Depth steps with the latency queue, then
each rank dumps its weights and its queue so the test can check both stayed identical across processes."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from robustdepth.configure import load_config
from robustdepth.training.trainer import Trainer


def main(root: str, out: str) -> None:
    overrides = [f"data.root={root}", "data.dataset=folder", "data.height=64", "data.width=96",
                 "data.num_workers=0", "optim.batch_size=2", "optim.max_steps=3", "train.progress=false",
                 "train.log_every=1000", "train.image_every=100000", "train.ckpt_every=100000",
                 "degrade.every_n_steps=1", "providers.latency_queue.warmup_steps=1",
                 "providers.latency_queue.refresh_every=2"]
    cfg = load_config("sec_monodepth2", overrides)
    trainer = Trainer(cfg, run_dir=Path(out) / "run")
    initial = {k: v.clone() for k, v in trainer.models.state_dict().items()}
    trainer.fit()
    queue = trainer.providers.providers["latency_queue"]
    torch.save({"final": trainer.models.state_dict(), "initial": initial, "world": dist.get_world_size(),
                "queue": queue.state_dict(), "grads": [p.grad for p in queue.worker.parameters()]},
               Path(out) / f"rank{dist.get_rank()}.pt")
    trainer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
