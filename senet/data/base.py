"""What every senet dataset reports about itself, and the error raised when data is unusable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class DataError(RuntimeError):
    """Data that is missing, unreadable or inconsistent; the message says how to fix it."""


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


def default_data_root() -> Path:
    """Where senet keeps datasets it arranges or downloads: $SENET_DATA or ~/.cache/senet/data."""
    if os.environ.get("SENET_DATA"):
        return Path(os.environ["SENET_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "senet" / "data"
