"""``evaluate_weights`` (top-1/top-5, per-class accuracy, confusion matrix: an
``EvaluationReport``) and ``compare_runs``."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from senet.config import ConfigError
from senet.evaluation.source import EvalSource
from senet.plots.confusion import plot_confusion
from senet.plots.curves import plot_overlay
from senet.train.epoch import evaluate
from senet.train.run_log import read_metrics
from senet.train.summary import RunSummary


@dataclass
class EvaluationReport:
    """What ``evaluate_weights`` measured; ``to_dict()`` is ``eval.json`` (no confusion matrix)."""

    model: str
    weights: Path
    data: str
    images: int
    loss: float
    top1: float
    top5: float
    per_class: dict[str, float]  # class name -> top-1 %
    preprocessing: dict[str, Any]  # mean, std, image size, ... the weights were evaluated with
    output_dir: Path
    confusion: torch.Tensor = field(repr=False)  # (C, C) int64, rows = true class

    def to_dict(self) -> dict[str, Any]:
        """The report as ``eval.json`` holds it: paths as text, without the confusion matrix."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "confusion"}
        return {**out, "weights": str(self.weights), "output_dir": str(self.output_dir)}

    def to_json(self) -> str:
        """The text of ``eval.json``."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def evaluate_weights(
    source: EvalSource, *, output_dir: str | Path | None = None, amp: str = "none"
) -> EvaluationReport:
    """Evaluate the weights of ``source`` on the val split of its data; write the report.

    See :func:`prepare_evaluation` for how weights and preprocessing are matched. Writes
    ``eval.json``, ``per_class.csv`` and ``confusion.png`` into ``output_dir`` (default: a
    folder ``eval-<data>`` beside the weights).
    """
    run = source.prepare()
    result = evaluate(
        run.model, run.loader, device=run.device, amp=amp, num_classes=run.info.num_classes
    )
    out = Path(output_dir) if output_dir else run.weights.parent / f"eval-{run.info.name}"
    out.mkdir(parents=True, exist_ok=True)
    classes = run.class_names
    counts = result["confusion"].sum(dim=1).tolist()
    with open(out / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "name", "images", "top1"])
        for i, (name, n, acc) in enumerate(zip(classes, counts, result["per_class"], strict=True)):
            writer.writerow([i, name, n, f"{acc:.4f}"])
    plot_confusion(
        result["confusion"].tolist(),
        classes,
        out / "confusion.png",
        title=f"{source.model_name} on {run.info.name} ({result['images']:,} images): "
        f"top-1 {result['top1']:.2f}%",
    )
    report = EvaluationReport(
        model=source.model_name,
        weights=run.weights,
        data=run.info.name,
        images=result["images"],
        loss=result["loss"],
        top1=result["top1"],
        top5=result["top5"],
        per_class=dict(zip(classes, result["per_class"], strict=True)),
        preprocessing={k: v for k, v in run.preprocessing.items() if v is not None},
        output_dir=out,
        confusion=result["confusion"],
    )
    (out / "eval.json").write_text(report.to_json())
    return report


def per_class_table(report: EvaluationReport) -> Table:
    """Rich table of per-class accuracy of an ``evaluate_weights`` report."""
    table = Table(
        title=f"{report.model} on {report.data}: top-1 {report.top1:.2f}%, "
        f"top-5 {report.top5:.2f}% ({report.images:,} images)"
    )
    table.add_column("class")
    table.add_column("top-1 %", justify="right")
    for name, acc in report.per_class.items():
        table.add_row(name, f"{acc:.2f}")
    return table


_COMPARED = (
    "model", "data", "final_top1", "best_top1", "best_epoch", "params", "macs", "epochs",
    "val_images", "train_seconds", "wall_seconds", "train_img_s",
)  # fmt: skip


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
