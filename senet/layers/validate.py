"""Argument and input checks shared by the layers, models, profiler and retrofit, so every error
names the argument the user passed and reads the same way."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def check_positive_int(owner: str, name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")
    return value


def check_finite_number(owner: str, name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite int or float, else raise a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


def check_choice(owner: str, name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"{owner}: unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}"
        )
    return value  # type: ignore[return-value]


def check_feature_map(owner: str, channels: int, x: torch.Tensor) -> None:
    """Raise a ValueError unless ``x`` is an (N, channels, H, W) tensor."""
    if x.dim() != 4:
        raise ValueError(
            f"{owner}(channels={channels}) expects a 4-D (N, C, H, W) tensor, "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{owner}(channels={channels}) got input with {x.shape[1]} channels; "
            f"build it with channels={x.shape[1]} or feed it a {channels}-channel feature map"
        )
