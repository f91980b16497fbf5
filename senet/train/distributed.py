"""Data-parallel training on torch.distributed: the process group, its rank, and the few
collectives the training loop needs (metric sums, agreement on errors, RNG gathering).

``torchrun --nproc_per_node=N -m senet train ...`` sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``init_world`` reads them (env:// init)
and joins the group: NCCL when the processes train on CUDA, Gloo on CPU. Without those
variables it returns a one-process ``World`` whose collectives do nothing, so the same code
path serves both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 is the one that writes)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # True when init_world created the process group (and must end it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` in place over all ranks (``sum``, ``max`` or ``min``); return it."""
        if self.distributed:
            dist.all_reduce(tensor, op=_OPS[op])
        return tensor

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def main_result(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and hand its result, or its exception, to every rank.

        The error is raised everywhere, so no rank is left waiting in a collective for a
        rank that has already failed (the commonest way a DDP job hangs instead of exiting).
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as e:
                error = e
        if self.distributed:
            result, error = self.broadcast_object((result, error))
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. unpacking a dataset), then the others.

        An error on rank 0 is raised on every rank before the others start.
        """
        error = None
        if self.is_main:
            try:
                yield
            except Exception as e:
                error = e
        if self.distributed:
            error = self.broadcast_object(error)
        if error is not None:
            raise error
        if not self.is_main:
            yield

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if ``init_world`` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def _object_device(self) -> torch.device:
        # NCCL moves object bytes through the GPU; Gloo through host memory.
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def init_world(device: str = "auto") -> World:
    """Join the process group torchrun describes (or none); pick this process's device.

    ``device``: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``; under torchrun
    each process takes the GPU of its ``LOCAL_RANK``. An explicit ``cuda:K`` is refused with
    several processes, since every process would train on the same GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not dist.is_initialized():
        return World(device=resolve_device(device))
    if dist.is_initialized():  # the caller set the group up (e.g. from a notebook)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank, owns = int(os.environ.get("LOCAL_RANK", rank)), False
    else:
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start distributed "
                "runs with torchrun --nproc_per_node=N -m senet train ..."
            )
        rank, local_rank, owns = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), True
    if device.startswith("cuda:") and world_size > 1:
        from senet.config import ConfigError

        raise ConfigError(
            f"train.device={device} with {world_size} processes would put every process on one "
            "GPU; use train.device=cuda (each process takes the GPU of its LOCAL_RANK)"
        )
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if owns:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None)
    return World(rank, world_size, local_rank, dev, owns)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA request without CUDA is an error."""
    from senet.config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def wrap_ddp(model: nn.Module, world: World) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself.

    Every rank starts from rank 0's parameters and buffers (DDP broadcasts them here).
    """
    if not world.distributed:
        return model
    ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (what is saved and evaluated)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    Without SyncBatchNorm each rank's running statistics follow its own batches; DDP copies
    rank 0's at each forward, but after the last step they differ again. Evaluation (which
    shards the validation set over ranks) and saving must all use the same, rank 0's.
    """
    if world.distributed:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)
