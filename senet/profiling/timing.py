"""Latency, throughput and peak memory of forward passes, several models interleaved in one run."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.layers.validate import check_positive_int
from senet.profiling.errors import ProfileError


@dataclass(frozen=True)
class Timing:
    """Forward-pass timings of one model on one input batch, under ``torch.inference_mode``."""

    device: str
    batch_size: int
    compiled: bool  # run through torch.compile (compilation happens during warm-up)
    channels_last: bool  # model and input in torch.channels_last memory format
    warmup: int  # untimed runs before the timed ones
    latencies_ms: tuple[float, ...]  # one per timed run, milliseconds per batch
    peak_memory_bytes: int | None  # memory one forward needs above weights + input (see method)
    memory_method: str  # how peak_memory_bytes was measured

    @property
    def repeats(self) -> int:
        return len(self.latencies_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p90_ms(self) -> float:
        """90th percentile latency (nearest rank), milliseconds per batch."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, -(-9 * len(ordered) // 10) - 1)]

    @property
    def throughput(self) -> float:
        """Images per second at the median latency."""
        return self.batch_size / (self.median_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "batch_size": self.batch_size,
            "compiled": self.compiled,
            "channels_last": self.channels_last,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "throughput": self.throughput,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_method": self.memory_method,
            "latencies_ms": list(self.latencies_ms),
        }


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Run in eval mode, then give every submodule back its own train/eval flag."""
    flags = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training


def sync(device: torch.device) -> None:
    """Wait for ``device`` to finish its queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so a later RSS peak is the forward's own."""
    libc_name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def _rss_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS: now, VmHWM: peak since the last reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_memory(run: Callable[[], Any], device: torch.device) -> tuple[int | None, str]:
    """Memory one call of ``run`` needs above what is allocated before it."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base, "cuda max_memory_allocated"
    if device.type != "cpu":
        return None, f"not measured on {device.type}"
    _trim_heap()
    try:
        # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kib("VmRSS")
        run()
        peak = _rss_kib("VmHWM")
        if base is not None and peak is not None:
            return max(0, peak - base) * 1024, "peak RSS growth (VmHWM)"
    except OSError:
        pass
    # Portable fallback: the lifetime peak only moves when this run exceeds every earlier one.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return (after - before) * scale, "lifetime peak RSS growth (ru_maxrss, a lower bound)"


def prepare(
    model: nn.Module, device: torch.device, channels_last: bool, compile: bool = False
) -> nn.Module:
    """An eval-mode model on ``device``: the caller's own if nothing must change, else a copy."""
    on_device = all(t.device == device for t in [*model.parameters(), *model.buffers()])
    if not on_device or channels_last:
        model = copy.deepcopy(model).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model


def timing_device(models: Sequence[nn.Module], device: str | torch.device) -> torch.device:
    """``device`` checked for timing: a GPU that exists, models with real (not meta) weights."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ProfileError(
                f"timing on device={str(device)!r} needs a CUDA GPU; torch sees none"
            )
        if device.index is None:  # "cuda" means the current GPU; tensors report "cuda:N"
            device = torch.device("cuda", torch.cuda.current_device())
    if any(t.is_meta for m in models for t in [*m.parameters(), *m.buffers()]):
        raise ProfileError(
            "timing needs real weights, but the model's tensors are on the meta device; "
            "build it on the CPU (or GPU) to time it, or profile with timing=False"
        )
    return device


def random_batch(
    input_size: Sequence[int], batch_size: int, device: torch.device, channels_last: bool
) -> torch.Tensor:
    """The timed input: standard normal, channels_last where asked and the input is 4-D."""
    x = torch.randn(batch_size, *input_size, device=device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def measure(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 5,
    repeats: int = 20,
    compile: bool = False,
    channels_last: bool = False,
) -> list[Timing]:
    """Time the forward of each model on a random batch, the models interleaved run by run.

    Each model gets ``warmup`` untimed runs, then one run that measures peak memory, then the
    ``repeats`` timed runs go round the models in turn, so drift in clock speed or load hits
    all of them alike. Models already on ``device`` (and not converted to channels_last) run
    as they are, in eval mode for the duration; others run as copies.
    """
    check_positive_int("measure", "repeats", repeats)
    check_positive_int("measure", "batch_size", batch_size)
    if warmup < 0:
        raise ProfileError(f"measure: warmup must be >= 0, got {warmup!r}")
    device = timing_device(models, device)
    x = random_batch(input_size, batch_size, device, channels_last)
    runs = [prepare(m, device, channels_last, compile) for m in models]
    latencies: list[list[float]] = [[] for _ in runs]
    peaks = []
    with torch.inference_mode(), eval_mode(*runs):
        for run in runs:
            for _ in range(warmup):
                run(x)
            sync(device)
            peaks.append(_peak_memory(lambda run=run: run(x), device))
        for _ in range(repeats):
            for i, run in enumerate(runs):
                sync(device)
                start = time.perf_counter()
                run(x)
                sync(device)
                latencies[i].append((time.perf_counter() - start) * 1000.0)
    return [
        Timing(
            device=str(device),
            batch_size=batch_size,
            compiled=compile,
            channels_last=channels_last,
            warmup=warmup,
            latencies_ms=tuple(lat),
            peak_memory_bytes=peak,
            memory_method=method,
        )
        for lat, (peak, method) in zip(latencies, peaks, strict=True)
    ]
