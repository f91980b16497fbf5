"""Checkpoints (full training state, written atomically, verified, rotated) and weight files.

A run keeps its checkpoints in ``<run>/checkpoints/``, one file per save, named by the global
step and the first 16 hex digits of the file's SHA-256: ``step-00001200-3f9c0e1a2b4d5e6f.pt``.
The digest catches what a rename cannot: a file damaged after it was written (a bad disk, a
partial copy between machines). ``CheckpointDir.newest_valid`` walks back from the newest file
until one verifies and loads.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.models.weights import CheckpointError

CHECKPOINT_VERSION = 2


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_NAME = re.compile(r"^step-(\d+)-([0-9a-f]{16})\.pt$")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``CheckpointDir.save`` (tensors and
    plain data only); a digest in the file name is checked first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    named = _NAME.match(path.name)
    if named and not file_digest(path).startswith(named.group(2)):
        raise ValueError(
            f"checkpoint {path} is corrupt (truncated or damaged): its SHA-256 does not match "
            "the digest in its name"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...: all mean "not a usable checkpoint"
        raise ValueError(f"checkpoint {path} is unreadable (truncated or corrupt?): {e}") from e
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is not a senet training checkpoint (v{CHECKPOINT_VERSION})")
    return state


def training_state(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    ema: nn.Module | None,
    epoch: int,
    step: int,
    rng: dict[str, Any],
    config: dict[str, Any],
    history: list[dict[str, float]],
    best: dict[str, float],
) -> dict[str, Any]:
    """Everything needed to continue a run: ``epoch`` = epochs completed, ``step`` = global step."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "step": step,
        "rng": rng,
        "config": config,
        "history": history,
        "best": best,
    }


def restore_training_state(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    ema: nn.Module | None,
) -> None:
    """Load a ``training_state`` dict into freshly built objects (RNG is the caller's choice)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])


class CheckpointDir:
    """The ``checkpoints/`` folder of a run: verified saves, the last ``keep`` kept.

    ``save`` writes atomically (temporary file, fsync, rename) under a name holding the step
    and the file's digest, then deletes the oldest beyond ``keep``; a failed write raises
    ``CheckpointError`` and leaves every earlier checkpoint as it was.
    """

    def __init__(self, folder: str | Path, *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.folder = Path(folder)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first (by global step)."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict[str, Any], *, step: int) -> Path:
        """Write ``state`` as the checkpoint of global step ``step``; return its path."""
        previous = self.paths()
        tmp = self.folder / f".step-{step:08d}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for junk in self.folder.glob(".step-*.tmp"):  # left by a process killed mid-write
                junk.unlink(missing_ok=True)
            torch.save({"version": CHECKPOINT_VERSION, **state}, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            path = self.folder / f"step-{step:08d}-{file_digest(tmp)[:16]}.pt"
            os.replace(tmp, path)
            _fsync_dir(self.folder)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            kept = (
                f"the previous checkpoint {previous[-1]} is intact"
                if previous
                else "no earlier checkpoint"
            )
            raise CheckpointError(
                f"cannot write the checkpoint of step {step} in {self.folder} "
                f"({e.strerror or e}); {kept}. Free disk space or fix the folder's permissions, "
                "then continue with --resume auto"
            ) from e
        # Files of this step or later come from a timeline this run has left (it resumed from an
        # earlier checkpoint); then the oldest go, keeping `keep` in all.
        others = [p for p in self.paths() if p != path]
        stale = [p for p in others if int(_NAME.match(p.name).group(1)) >= step]  # type: ignore[union-attr]
        others = [p for p in others if p not in stale]
        for old in stale + others[: -self.keep + 1 or None]:
            old.unlink(missing_ok=True)
        return path

    def newest_valid(
        self, report: Callable[[str], None] = print, map_location: str | torch.device = "cpu"
    ) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that verifies and loads, and its state; None if there is none.

        Each newer file that fails is reported and renamed ``*.corrupt`` (kept for inspection,
        no longer a candidate) before trying the one before it.
        """
        for path in reversed(self.paths()):
            try:
                return path, load_checkpoint(path, map_location)
            except ValueError as e:
                bad = path.with_name(path.name + ".corrupt")
                report(f"{e}; moved it to {bad.name} and trying the previous checkpoint")
                path.rename(bad)
        return None


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX: fsync the directory entry)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
