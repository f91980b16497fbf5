"""IDX files (the MNIST family's format), plain or gzip'd, read with their size checked."""

from __future__ import annotations

import gzip
from math import prod
from pathlib import Path

import torch

from senet.data.base import DataError

_UINT8 = 0x08  # the IDX type code of unsigned bytes


def read_idx(path: Path, *, fix: str) -> torch.Tensor:
    """The uint8 array an IDX file holds (gzip'd when its name ends in ``.gz``).

    A file whose size differs from what its header promises (a truncated or partial copy,
    which torchvision's reader fails on with a reshape error) raises a DataError naming the
    file, the two sizes, and ``fix`` (what to do about it).
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as e:  # EOFError: a gzip stream cut short
        raise DataError(f"{path} is damaged ({e}). {fix}") from None
    header = _dims(data)
    if header is None:
        raise DataError(f"{path} is damaged: it has no IDX header of unsigned bytes. {fix}")
    dims, offset = header
    expected = offset + prod(dims)
    if len(data) != expected:
        unpacked = " unpacked" if path.suffix == ".gz" else ""
        raise DataError(
            f"{path} is damaged: {len(data):,} bytes{unpacked}, but its header promises "
            f"{expected:,} (a truncated or partial copy). {fix}"
        )
    if expected == offset:  # no items (frombuffer refuses an empty buffer)
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def _dims(data: bytes) -> tuple[list[int], int] | None:
    """The dimensions and the data offset of an unsigned-byte IDX header, or None."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != _UINT8:
        return None
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        return None
    return [int.from_bytes(data[i : i + 4], "big") for i in range(4, offset, 4)], offset
