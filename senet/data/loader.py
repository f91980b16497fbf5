"""DataLoaders that keep up on CPU and are reproducible per epoch (and ready for DDP)."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from senet.data.memory import InMemoryImages


def default_workers(dataset: Dataset) -> int:
    """0 for in-memory tensors (workers only add copies); else up to 8, one core kept free."""
    if isinstance(dataset, InMemoryImages):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 2) - 1))


def create_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    device: torch.device | str = "cpu",
    workers: int | None = None,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader:
    """Shuffled, last-partial-batch-dropped loader for training; ordered full loader for eval.

    Training always uses a ``DistributedSampler`` (with one replica when not distributed): its
    ``set_epoch(e)`` makes epoch ``e``'s order a function of ``(seed, e)`` only, which is what
    resuming and DDP need. Pinned memory on CUDA; persistent workers when there are workers.
    """
    workers = default_workers(dataset) if workers is None else workers
    n = len(dataset)  # type: ignore[arg-type]
    sampler = None
    if train or num_replicas > 1:
        sampler = DistributedSampler(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=train,
            seed=seed,
            drop_last=train,
        )
    # Drop the last partial batch in training (BatchNorm and the LR schedule want full batches)
    # unless that would leave no batch at all.
    per_rank = n // num_replicas
    drop_last = train and per_rank >= batch_size
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select epoch ``epoch``'s shuffle order (a no-op for unshuffled loaders)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
