"""Seeding and RNG state capture, for reproducible runs and exact resumes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of the training process's random stream (dropout, ...) in epoch ``epoch`` on DDP
    rank ``rank``: reseeding at each epoch start makes an epoch a function of ``(seed, epoch)``
    only; each rank draws its own numbers. (Augmentation has per-image seeds: see
    ``senet.data.sampler``.)"""
    return (seed * 1_000_003 + epoch + rank * 7_919_000_003) % 2**63


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and this GPU's generator states (safe for weights_only loading)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # Tensors and plain numbers only, so checkpoints load with torch.load(weights_only=True).
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # This process's GPU only: asking for all would open a context on every GPU (DDP).
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
