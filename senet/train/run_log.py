"""The run folder: resolved config, metrics.csv, TensorBoard events, summary.json and plots."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from senet.plots.curves import plot_curves

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "train_img_s",
    "train_skipped",
    "val_loss",
    "val_top1",
    "val_top5",
    "val_flip_loss",
    "val_flip_top1",
    "val_flip_top5",
    "ema_val_loss",
    "ema_val_top1",
    "ema_val_top5",
    "ema_val_flip_loss",
    "ema_val_flip_top1",
    "ema_val_flip_top5",
    "epoch_seconds",
    "bn_frozen",
)


class RunLog:
    """Writes one row per epoch to ``metrics.csv`` (and TensorBoard), the summary and plots.

    ``rows`` is the full history; a resumed run passes the history from its checkpoint, and the
    CSV is rewritten from it so the file always matches the state.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        tensorboard: bool = True,
        rows: list[dict] | None = None,
        notice: Any = print,
    ) -> None:
        self.folder = Path(folder)
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                notice(
                    "tensorboard is not installed: skipping TensorBoard events "
                    "(pip install tensorboard to get them)"
                )
            else:
                self.writer = SummaryWriter(str(self.folder / "tensorboard"))
        self._write_csv()

    def add_epoch(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.folder / "metrics.csv", "a", newline="") as f:
            csv.DictWriter(f, METRIC_COLUMNS, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and value is not None:
                    group = key.split("_", 1)[0] if "_" in key else "train"
                    self.writer.add_scalar(f"{group}/{key}", value, row["epoch"])
            self.writer.flush()

    def add_step(self, step: int, metrics: dict[str, float]) -> None:
        """Per-step training loss and LR (TensorBoard only)."""
        if self.writer is not None:
            self.writer.add_scalar("step/train_loss", metrics["loss"], step)
            self.writer.add_scalar("step/lr", metrics["lr"], step)

    def plot(self, title: str = "") -> None:
        if self.rows:
            plot_curves(self.rows, self.folder / "curves.png", title=title)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _write_csv(self) -> None:
        with open(self.folder / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)


def read_metrics(folder: str | Path) -> list[dict[str, str]]:
    """The rows of a run folder's metrics.csv (strings, as csv gives them)."""
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
