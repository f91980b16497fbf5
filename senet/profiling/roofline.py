"""This machine's two roofs: peak compute (a large matmul) and memory bandwidth (a large copy).

An op that does I FLOPs per byte it moves can run at most min(peak, I x bandwidth): below the
ridge point peak / bandwidth it waits on memory (memory-bound), above it on arithmetic. Both
roofs are measured here, on the device and threads the model is timed with, and are the best
of several runs: a roof is what the machine can reach, not what it usually does. The memory
roof is a copy far larger than any cache; a second, small copy gives the bandwidth of data
that stays in cache, which ops on small tensors can reach.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from senet.layers.validate import check_positive_int
from senet.profiling.timing import sync

Clock = Callable[[], float]


@dataclass(frozen=True)
class Roof:
    """Measured peak compute and memory bandwidth of one device."""

    device: str
    threads: int
    dtype: str
    peak_gflops: float  # FLOPs of an n x n @ n x n product over its best time, in GFLOP/s
    bandwidth_gbs: float  # bytes a copy reads and writes over its best time, in GB/s
    cache_bandwidth_gbs: float  # the same for a copy small enough to stay in cache
    matmul_size: int  # n
    copy_bytes: int  # bytes of the copied tensor (the copy moves twice this)
    cache_copy_bytes: int
    repeats: int

    @property
    def ridge(self) -> float:
        """The intensity (FLOPs per byte) where the two roofs meet."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable_gflops(self, intensity: float) -> float:
        """The roofline: the most GFLOP/s an op of this intensity can reach here."""
        return min(self.peak_gflops, intensity * self.bandwidth_gbs)

    def describe(self) -> str:
        text = (
            f"Roofline on {self.device}, {self.threads} threads, {self.dtype}, best of "
            f"{self.repeats}: peak compute {self.peak_gflops:.1f} GFLOP/s ({self.matmul_size}^2 "
            f"matmul), memory bandwidth {self.bandwidth_gbs:.1f} GB/s (copy of "
            f"{_mib(self.copy_bytes)}, read + write), ridge point {self.ridge:.1f} FLOP/B. "
            f"In cache (copy of {_mib(self.cache_copy_bytes)}) {self.cache_bandwidth_gbs:.1f} GB/s"
        )
        if self.cache_bandwidth_gbs > self.bandwidth_gbs:
            return text + ": ops on small tensors can pass the memory roof ('% of roof' > 100%)."
        return text + ", below the memory bandwidth: the machine was busy, or threads waited."

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ridge": self.ridge}


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:g} MiB"


def _best_seconds(
    work: Callable[[], Any], device: torch.device, repeats: int, clock: Clock
) -> float:
    """The shortest of ``repeats`` timed calls of ``work``, after one untimed call."""
    work()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = clock()
        work()
        sync(device)
        best = min(best, clock() - start)
    if not best > 0:
        raise RuntimeError(f"the clock did not advance over a timed run ({best!r} s)")
    return best


def peak_compute(
    device: str | torch.device = "cpu",
    *,
    size: int = 2048,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    clock: Clock = time.perf_counter,
) -> float:
    """GFLOP/s of the best of ``repeats`` ``size`` x ``size`` matrix products (2 n^3 FLOPs)."""
    check_positive_int("peak_compute", "size", size)
    check_positive_int("peak_compute", "repeats", repeats)
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = _best_seconds(lambda: torch.mm(a, b, out=out), device, repeats, clock)
    return 2 * size**3 / seconds / 1e9


def memory_bandwidth(
    device: str | torch.device = "cpu",
    *,
    nbytes: int = 2**27,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    clock: Clock = time.perf_counter,
) -> float:
    """GB/s of the best of ``repeats`` copies of an ``nbytes`` tensor (read + write counted)."""
    check_positive_int("memory_bandwidth", "nbytes", nbytes)
    check_positive_int("memory_bandwidth", "repeats", repeats)
    device = torch.device(device)
    elements = max(1, nbytes // torch.empty((), dtype=dtype).element_size())
    src = torch.rand(elements, device=device).to(dtype)
    dst = torch.empty_like(src)
    with torch.inference_mode():
        seconds = _best_seconds(lambda: dst.copy_(src), device, repeats, clock)
    return 2 * src.nbytes / seconds / 1e9


def measure_roof(
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype = torch.float32,
    matmul_size: int = 2048,
    copy_bytes: int = 2**27,
    cache_copy_bytes: int = 2**19,
    repeats: int = 5,
    clock: Clock = time.perf_counter,
) -> Roof:
    """Peak compute, memory and in-cache bandwidth of ``device`` at torch's thread count.

    The small copy is short, so it gets ten times the repeats of the others.
    """
    device = torch.device(device)
    timed: dict[str, Any] = dict(dtype=dtype, repeats=repeats, clock=clock)
    peak = peak_compute(device, size=matmul_size, **timed)
    bandwidth = memory_bandwidth(device, nbytes=copy_bytes, **timed)
    cached = memory_bandwidth(device, nbytes=cache_copy_bytes, **{**timed, "repeats": 10 * repeats})
    return Roof(
        device=str(device),
        threads=torch.get_num_threads(),
        dtype=str(dtype).removeprefix("torch."),
        peak_gflops=peak,
        bandwidth_gbs=bandwidth,
        cache_bandwidth_gbs=cached,
        matmul_size=matmul_size,
        copy_bytes=copy_bytes,
        cache_copy_bytes=cache_copy_bytes,
        repeats=repeats,
    )
