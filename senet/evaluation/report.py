"""``evaluate_weights``: top-1/top-5, per-class accuracy and the confusion matrix of a weights
file, as an ``EvaluationReport`` (and eval.json, per_class.csv, confusion.png)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from senet.evaluation.source import EvalSource
from senet.plots.confusion import plot_confusion
from senet.train.epoch import evaluate_loader


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
    # with flip test-time augmentation (mean logits of image and mirror); None when not asked
    flip_loss: float | None = None
    flip_top1: float | None = None
    flip_top5: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as ``eval.json`` holds it: paths as text, without the confusion matrix
        (and without the flip-TTA keys when not measured)."""
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "confusion" and not (f.name.startswith("flip_") and self.flip_top1 is None)
        }
        return {**out, "weights": str(self.weights), "output_dir": str(self.output_dir)}

    def to_json(self) -> str:
        """The text of ``eval.json``."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def evaluate_weights(
    source: EvalSource,
    *,
    output_dir: str | Path | None = None,
    amp: str = "none",
    flip: bool = False,
) -> EvaluationReport:
    """Evaluate the weights of ``source`` on the val split of its data; write the report.

    ``flip`` adds the flip test-time-augmentation metrics (``flip_top1``, ...) to the report.

    See :func:`prepare_evaluation` for how weights and preprocessing are matched. Writes
    ``eval.json``, ``per_class.csv`` and ``confusion.png`` into ``output_dir`` (default: a
    folder ``eval-<data>`` beside the weights).
    """
    run = source.prepare()
    result = evaluate_loader(
        run.model,
        run.loader,
        device=run.device,
        amp=amp,
        num_classes=run.info.num_classes,
        flip=flip,
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
        flip_loss=result.get("flip_loss"),
        flip_top1=result.get("flip_top1"),
        flip_top5=result.get("flip_top5"),
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
