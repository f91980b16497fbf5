"""DataLoaders that keep up on CPU and are reproducible per epoch, per item and under DDP."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

from senet.data.bad_items import (
    ON_BAD_IMAGE,
    ItemsWithErrors,
    ReportingLoader,
    collate_reporting,
)
from senet.data.base import DataOptionError
from senet.data.memory import InMemoryImages
from senet.data.sampler import EpochSampler, SeededItems, ShardSampler


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
    on_bad_image: str = "stop",
) -> ReportingLoader:
    """Shuffled, last-partial-batch-dropped loader for training; ordered full loader for eval.

    Training uses an ``EpochSampler`` (a DistributedSampler, with one replica when not
    distributed): ``set_epoch(loader, e)`` makes epoch ``e``'s order and every image's
    augmentation a function of ``(seed, e)`` only, which is what resuming and DDP need.
    Evaluation splits the set over ``num_replicas`` ranks without padding (each image counted
    once). Pinned memory on CUDA; persistent workers when there are workers.

    A DataError raised for an item, in a worker process too, is raised as it was (not wrapped
    in torch's "Caught DataError in DataLoader worker ..."). ``on_bad_image="skip"`` leaves out
    images that cannot be decoded instead, and logs each one (``loader.skipped_images``).
    """
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataOptionError("on_bad_image", on_bad_image, "expected 'stop' or 'skip'")
    workers = default_workers(dataset) if workers is None else workers
    n = len(dataset)  # type: ignore[arg-type]
    sampler: EpochSampler | ShardSampler
    if train:
        sampler = EpochSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        dataset = SeededItems(dataset)
    else:
        sampler = ShardSampler(n, num_replicas=num_replicas, rank=rank)
    # Drop the last partial batch in training (BatchNorm and the LR schedule want full batches)
    # unless that would leave no batch at all.
    per_rank = n // num_replicas
    drop_last = train and per_rank >= batch_size
    return ReportingLoader(
        ItemsWithErrors(dataset, skip_bad_images=on_bad_image == "skip"),
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_reporting,
        pin_memory=torch.device(device).type == "cuda",
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        # Its own generator: making an iterator must not draw from the training process's
        # random stream (that stream is checkpointed and restored mid-epoch).
        generator=torch.Generator().manual_seed(seed),
    )


def set_epoch(loader: DataLoader, epoch: int, *, skip_batches: int = 0) -> None:
    """Select epoch ``epoch``'s order and augmentation, starting after ``skip_batches`` batches
    (a no-op for evaluation loaders)."""
    if isinstance(loader.sampler, EpochSampler):
        loader.sampler.set_epoch(epoch, start=skip_batches * (loader.batch_size or 1))
    elif skip_batches:
        raise ValueError("only a training loader (EpochSampler) can start part-way into an epoch")
