"""Samplers that make an epoch a function of ``(seed, epoch)`` alone, for any number of
processes, loader workers, or restarts.

- ``EpochSampler`` (training): torch's DistributedSampler order (a permutation seeded by
  ``seed + epoch``, rank ``r`` of ``N`` taking every N-th index from ``r``), able to start
  part-way into the epoch (exact resume skips the batches already trained), and yielding each
  index with its own augmentation seed.
- ``SeededItems``: the dataset wrapper that seeds torch's generator with that seed around each
  item. Image ``i`` is then augmented in epoch ``e`` the same way whichever worker, rank or
  restarted process loads it: N processes with per-process batch B see exactly the images and
  crops one process with batch N x B sees, and a resumed run sees what the killed one would have.
- ``ShardSampler`` (evaluation): rank ``r`` of ``N`` takes indices ``r, r+N, ...``, with no
  padding, so summing the ranks' counts counts every image exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

_MASK = 2**64 - 1


def item_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of dataset item ``index`` in ``epoch`` (splitmix64 of the three)."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1  # 63 bits: torch.manual_seed's range


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding ``(index, augmentation seed)``; ``set_epoch(e, start=k)``
    resumes epoch ``e`` after this rank's first ``k`` samples."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start={start} outside this rank's {self.num_samples} samples")
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return iter([(i, item_seed(self.seed, self.epoch, i)) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


class SeededItems(Dataset):
    """``dataset[index]`` computed with torch's default generator seeded by the item's seed.

    Keys are ``(index, seed)`` pairs from ``EpochSampler`` (plain indices pass through). The
    generator's previous state is restored afterwards, so a loader without workers leaves the
    training process's random stream (dropout) untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        gen = torch.random.default_generator
        state = gen.get_state()
        gen.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            gen.set_state(state)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + N, rank + 2N, ...`` in order: an exact, unpadded split."""

    def __init__(self, size: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.size, self.num_replicas, self.rank = size, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))
