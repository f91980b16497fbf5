"""The benchmark scripts' one timer: ``torch.utils.benchmark``'s median, on the threads asked for."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils import benchmark


def median_seconds(
    fn: Callable[[], object], min_run_time: float, num_threads: int | None = None, label: str = ""
) -> float:
    """Median seconds per call of ``fn`` (``blocked_autorange``), on ``num_threads`` threads.

    ``Timer`` runs on one thread unless told, so by default this times with the threads the
    process was given (``torch.get_num_threads()``).
    """
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=label, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median
