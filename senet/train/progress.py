"""What the user watches: a live Rich bar per epoch on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _stats(metrics: dict[str, float]) -> str:
    parts = []
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if "top1" in metrics:
        parts.append(f"top-1 {metrics['top1']:5.2f}%")
    if "img_s" in metrics:
        parts.append(f"{metrics['img_s']:,.0f} img/s")
    if "lr" in metrics:
        parts.append(f"lr {metrics['lr']:.4g}")
    return "  ".join(parts)


class PlainProgress:
    """One line every ``every`` steps and at the end of each phase (for CI logs and pipes)."""

    def __init__(self, every: int = 50, stream: TextIO | None = None) -> None:
        self.every = every
        self.stream = stream or sys.stdout
        self._desc = ""
        self._start = 0.0

    def start(self, desc: str, total: int) -> None:
        self._desc, self._start = desc, time.perf_counter()

    def update(self, step: int, total: int, metrics: dict[str, float]) -> None:
        # Every `every` steps, and at the end of phases long enough to have had a line before
        # (a short validation pass is summed up by the epoch line instead).
        if step % self.every and not (step == total and total >= self.every):
            return
        elapsed = time.perf_counter() - self._start
        eta = elapsed / step * (total - step)
        self.log(f"{self._desc} {step}/{total}  {_stats(metrics)}  eta {_clock(eta)}")

    def stop(self) -> None:
        pass

    def log(self, message: str) -> None:
        print(message, file=self.stream, flush=True)


class BarProgress:
    """A Rich progress bar per phase: loss, top-1, img/s, LR, elapsed and ETA."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task = None

    def start(self, desc: str, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(desc, total=total, stats="")

    def update(self, step: int, total: int, metrics: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=_stats(metrics))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)


class SilentProgress(PlainProgress):
    """No step lines; epoch summaries only."""

    def update(self, step: int, total: int, metrics: dict[str, float]) -> None:
        pass


class MutedProgress(SilentProgress):
    """Nothing at all: the display of DDP ranks other than 0 (rank 0 speaks for all)."""

    def log(self, message: str) -> None:
        pass


def create_progress(mode: str = "auto", *, log_every: int = 50) -> PlainProgress | BarProgress:
    """``bar`` (Rich), ``plain`` (lines), ``none`` (summaries only), or ``auto``: bar on a TTY."""
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "plain"
    if mode == "bar":
        return BarProgress()
    if mode == "plain":
        return PlainProgress(log_every)
    if mode == "none":
        return SilentProgress(log_every)
    raise ValueError(f"progress mode {mode!r}; expected auto, bar, plain or none")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
