"""Checkpoints (full training state, one file, written atomically) and weight files."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

CHECKPOINT_VERSION = 1


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``: readers see old or new, whole.

    The temporary file lives in the same folder (a rename is atomic only within a file system);
    on any error it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    # A fresh name in the same folder (created by ``write``, so the umask applies as usual).
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable (POSIX: fsync the directory entry).
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training-state dict (see ``training_state``) atomically with ``torch.save``."""
    atomic_write(path, lambda tmp: torch.save({"version": CHECKPOINT_VERSION, **state}, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
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


def save_weights(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Model weights as safetensors; ``meta`` (model name, kwargs, preprocessing) as JSON inside.

    Tensors that share storage (tied weights) are stored once each as contiguous copies.
    """
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"senet": json.dumps(meta)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and the senet metadata (empty if the file has none) of a weights file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("senet")
        return load_file(str(path)), json.loads(raw) if raw else {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "version" in state and "model" in state:
        return state["model"], {}  # a senet training checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state, {}
