"""Deterministic, resumable, DDP-aware batch order."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Shuffles per epoch from (seed, epoch) alone, shards across ranks, can skip finished batches.

    Yields *encoded* indices ``epoch * n + i`` so the dataset can derive each sample's augmentation
    from (seed, epoch, i) — the same in a resumed run and with any number of loader workers.
    Incomplete last batches are dropped (as Monodepth2).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.skip_batches = 0
        if self.steps_per_epoch == 0:
            raise ValueError(f"{num_items} training samples cannot fill one batch of {batch_size} on "
                             f"{world_size} process(es): lower optim.batch_size or add data")

    @property
    def steps_per_epoch(self) -> int:
        return (self.num_items // self.world_size) // self.batch_size

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's order; ``skip_batches`` already-trained batches are left out (resume)."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_items)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num_items, generator=gen)

    def __iter__(self) -> Iterator[int]:
        mine = self._order()[self.rank::self.world_size][: self.steps_per_epoch * self.batch_size]
        offset = self.epoch * self.num_items
        for i in mine[self.skip_batches * self.batch_size:].tolist():
            yield offset + i

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.skip_batches) * self.batch_size
