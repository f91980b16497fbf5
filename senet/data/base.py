"""What every senet dataset reports about itself, the options base class, and the data errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset


class DataError(RuntimeError):
    """Data that is missing, unreadable or inconsistent; the message says how to fix it."""


class DataOptionError(DataError, ValueError):
    """An argument a dataset or loader cannot take. ``option`` names the argument, ``reason``
    says why; the config layer puts its own key in front of the reason."""

    def __init__(self, option: str, value: Any, reason: str) -> None:
        super().__init__(f"{option}={value!r}: {reason}")
        self.option, self.value, self.reason = option, value, reason

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across loader workers
        return type(self), (self.option, self.value, self.reason)


class BadImageError(DataError):
    """An image file that cannot be decoded (truncated, or not an image)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot read image {path}: {reason}. Remove or replace the file (a truncated "
            "download or a non-image file in a class folder are the usual causes), or let the "
            "loader skip such files (on_bad_image='skip')."
        )
        self.path, self.reason = path, reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation of a dataset, so a model and its preprocessing can be built."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int  # side of the (square) images the model sees
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]
    classes: list[str] = field(default_factory=list)  # class names, index = label
    source: str = ""  # where the images came from (files, folder, generator), for the run log


@dataclass(frozen=True, kw_only=True)
class DatasetOptions:
    """The options of one registered dataset, checked when constructed (a DataOptionError names
    the argument); ``build(split)`` then makes the split without changing anything afterwards."""

    def build(self, split: str) -> tuple[Dataset, DatasetInfo]:
        raise NotImplementedError


def check_count(option: str, value: Any, *, minimum: int = 1, optional: bool = True) -> None:
    """``value`` is an int >= ``minimum`` (or None when ``optional``); else a DataOptionError."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise DataOptionError(option, value, f"must be {allowed}")


def check_flag(option: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise DataOptionError(option, value, "must be True or False")


def check_stats(option: str, value: Any) -> None:
    """``value`` is None or a non-empty list of per-channel numbers (``std``: all > 0)."""
    if value is None:
        return
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok:
        raise DataOptionError(option, value, "must be a list of per-channel numbers or None")
    if option == "std" and any(v <= 0 for v in value):
        raise DataOptionError(option, value, "every standard deviation must be > 0")


def default_data_root() -> Path:
    """Where senet keeps datasets it arranges or downloads: $SENET_DATA or ~/.cache/senet/data."""
    if os.environ.get("SENET_DATA"):
        return Path(os.environ["SENET_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "senet" / "data"
