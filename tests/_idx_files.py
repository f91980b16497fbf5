"""Synthetic Fashion-MNIST IDX files, so data tests never need (or skip without) the real set."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch

NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: torch.Tensor) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000080N, N big-endian dimensions, then the bytes."""
    header = struct.pack(">I", 0x0800 + array.dim())
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def write_idx(path: Path, array: torch.Tensor) -> None:
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_fashion_mnist(
    folder: Path, *, sizes: tuple[int, int] = (12, 10), gz: bool = True, seed: int = 0
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The four IDX files of a tiny Fashion-MNIST in ``folder``; returns split -> (images,
    labels), images (N, 28, 28) uint8, labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for split, n in zip(("train", "val"), sizes, strict=True):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        image_name, label_name = NAMES[split]
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{image_name}{suffix}", images)
        write_idx(folder / f"{label_name}{suffix}", labels)
        out[split] = (images, labels)
    return out
