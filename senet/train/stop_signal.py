"""Stopping a run on SIGTERM with nothing lost.

SIGTERM is how a run is usually stopped from outside: a scheduler preempting the job (SLURM,
Kubernetes, spot instances), ``kill``, or ``senet ablate`` being stopped. Without a handler the
process dies at once and the rerun resumes from the last periodic checkpoint, up to an epoch
back. While training, senet instead finishes the step in progress, writes a checkpoint of it and
stops with :class:`TrainingStopped`; ``--resume auto`` then continues from exactly that step.
Under DDP the ranks agree (a ``max`` over ranks at each check), so all stop at the same step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import torch

from senet.train.distributed import World


@contextlib.contextmanager
def handling_sigterm(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` gets SIGTERM for the ``with`` block, then the previous handler is put back.
    Only the main thread can install one; elsewhere the default stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python
            signal.signal(signal.SIGTERM, previous)


class TrainingStopped(RuntimeError):
    """The run was stopped by a signal after a checkpoint of its last step (if it writes any)."""

    def __init__(self, step: int, kept: str | None = None) -> None:
        """``kept``: what the run left to resume from, for the message."""
        message = f"stopped by a signal after global step {step}"
        super().__init__(f"{message}: {kept}" if kept else message)
        self.step = step


class StopSignal:
    """Records SIGTERM while :meth:`installed`; :meth:`requested` asks every rank."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Catch SIGTERM for the ``with`` block (see :func:`handling_sigterm`)."""
        with handling_sigterm(self._record):
            yield self

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def requested(self, world: World, device: torch.device) -> bool:
        """Whether any rank has been asked to stop (the same answer on every rank)."""
        flag = torch.tensor(int(self.signum is not None), dtype=torch.int32, device=device)
        return bool(world.all_reduce(flag, "max").item())
