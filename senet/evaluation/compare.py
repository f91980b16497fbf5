"""``compare_runs``: finished run folders side by side (top-1, params, MACs, time) and their
training curves overlaid."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from senet.config import ConfigError
from senet.plots.curves import plot_overlay
from senet.train.run_log import read_metrics
from senet.train.summary import RunSummary

_COMPARED = (
    "model",
    "data",
    "final_top1",
    "best_top1",
    "best_epoch",
    "params",
    "macs",
    "epochs",
    "val_images",
    "train_seconds",
    "wall_seconds",
    "train_img_s",
)


def compare_runs(
    run_dirs: list[str | Path], *, plot_path: str | Path | None = None
) -> tuple[list[dict[str, Any]], Table]:
    """One row per run (top-1, params, MACs, time) and an overlay plot of their curves."""
    rows, curves = [], {}
    for folder in map(Path, run_dirs):
        if not (folder / "summary.json").is_file():
            raise ConfigError(f"{folder} is not a finished senet run (no summary.json)")
        summary = RunSummary.read(folder)
        label = folder.name
        curves[label] = read_metrics(folder)
        rows.append(
            {
                "run": label,
                **{key: getattr(summary, key) for key in _COMPARED},
                # The median epoch is robust to an epoch slowed by other work on the machine.
                "median_img_s": _median(
                    [float(r["train_img_s"]) for r in curves[label] if r.get("train_img_s")]
                ),
            }
        )
    if plot_path is not None:
        plot_overlay(curves, plot_path)
    return rows, comparison_table(rows)


def comparison_table(rows: list[dict[str, Any]], title: str = "Runs compared") -> Table:
    table = Table(title=title)
    for column in (
        "run",
        "model",
        "data",
        "test top-1 %",
        "best top-1 % (epoch)",
        "params",
        "MACs",
        "epochs",
        "wall time",
        "train img/s",
    ):
        table.add_column(column, justify="left" if column in ("run", "model", "data") else "right")
    for r in rows:
        table.add_row(
            r["run"],
            r["model"],
            r["data"],
            _pct(r["final_top1"]),
            f"{_pct(r['best_top1'])} ({r['best_epoch']})",
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:,.2f} M",
            str(r["epochs"]),
            f"{r['wall_seconds']:.0f} s",
            f"{r['median_img_s']:,.0f}",
        )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None
