"""Grid results -> one table per grid (markdown, CSV, JSON) and a plot, paper-table style.

Each row pools a point's seeds: top-1/top-5 as mean +- std of the final-epoch validation
accuracy (the paper reports final, not best-epoch, numbers), params and MACs of the model, and
the change against the reference row (the baseline, or the first point), and the measured
training time per image (mean over seeds of each run's mean epoch throughput).
"""

from __future__ import annotations

import csv
import json
import statistics
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from senet.ablation.grid import Grid
from senet.ablation.runner import PointResult
from senet.plots import pyplot


@dataclass
class Row:
    """One setting of the grid with its seeds pooled."""

    label: str
    settings: dict[str, Any]
    is_reference: bool
    seeds: list[int] = field(default_factory=list)
    top1: list[float] = field(default_factory=list)
    top5: list[float] = field(default_factory=list)
    params: int | None = None
    macs: int | None = None
    failed_seeds: list[int] = field(default_factory=list)
    train_img_s: list[float] = field(default_factory=list)  # each seed's training images/s

    @property
    def train_ms_per_image(self) -> float | None:
        """Training time per image (forward + backward + step), ms, mean over seeds."""
        return 1000 / statistics.fmean(self.train_img_s) if self.train_img_s else None

    @property
    def top1_mean(self) -> float | None:
        return statistics.fmean(self.top1) if self.top1 else None

    @property
    def top1_std(self) -> float | None:
        return statistics.stdev(self.top1) if len(self.top1) > 1 else None

    @property
    def top5_mean(self) -> float | None:
        top5 = [v for v in self.top5 if v is not None]
        return statistics.fmean(top5) if top5 else None

    @property
    def top5_std(self) -> float | None:
        top5 = [v for v in self.top5 if v is not None]
        return statistics.stdev(top5) if len(top5) > 1 else None


def build_rows(grid: Grid, results: list[PointResult]) -> list[Row]:
    """Pool results by setting; the reference row (baseline or first point) comes first."""
    rows: dict[str, Row] = {}
    reference = next((p.label for p in grid.points if p.is_baseline), grid.points[0].label)
    for result in sorted(results, key=lambda r: not r.point.is_baseline):
        point = result.point
        row = rows.setdefault(
            point.label, Row(point.label, dict(point.settings), point.label == reference)
        )
        if result.summary is None:
            if result.status == "failed":  # "not selected" points are simply not run yet
                row.failed_seeds.append(point.seed)
            continue
        row.seeds.append(point.seed)
        row.top1.append(result.summary.final_top1)
        row.top5.append(result.summary.final_top5)
        row.params, row.macs = result.summary.params, result.summary.macs
        if result.summary.train_img_s:
            row.train_img_s.append(result.summary.train_img_s)
    return list(rows.values())


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _delta(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return "—"
    return f"{value - reference:+.2f}"


def budget(results: list[PointResult]) -> str:
    """The training budget the finished runs had, e.g. "6,000 train images, 3 epochs" (read
    from their summaries, so a budget changed on the command line shows as run)."""
    done = [r.summary for r in results if r.summary]
    sizes = sorted({(s.train_images, s.epochs) for s in done})
    return "; ".join(f"{n:,} train images, {e} epochs" for n, e in sizes if n and e)


def markdown_table(grid: Grid, rows: list[Row], budget: str = "") -> str:
    """The grid's result table in Markdown, with the reference row marked."""
    ref = next(r for r in rows if r.is_reference)
    expected = len(grid.seeds)
    lines = [
        f"### {grid.title}" + (f" ({budget})" if budget else ""),
        "",
        "| setting | params | MACs (M) | top-1 (%) | top-5 (%) | Δ top-1 | train ms/img | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = f"{r.label} (reference)" if r.is_reference else r.label
        params = f"{r.params / 1e6:.3f}M" if r.params is not None else "—"
        macs = f"{r.macs / 1e6:.2f}" if r.macs is not None else "—"
        seeds = f"{len(r.seeds)}" + ("" if len(r.seeds) == expected else f" of {expected}")
        seeds += f" ({len(r.failed_seeds)} failed)" if r.failed_seeds else ""
        ms = r.train_ms_per_image
        lines.append(
            f"| {label} | {params} | {macs} | {_pm(r.top1_mean, r.top1_std)} | "
            f"{_pm(r.top5_mean, r.top5_std)} | {_delta(r.top1_mean, ref.top1_mean)} | "
            f"{'—' if ms is None else f'{ms:.3f}'} | {seeds} |"
        )
    lines += [
        "",
        "top-1/top-5: final-epoch validation accuracy, mean ± std over the seeds that finished; "
        "seeds 'k of n': a setting with seeds missing (the study's tables, "
        "`senet study`, do not average those).",
    ]
    return "\n".join(lines) + "\n"


def write_report(grid: Grid, results: list[PointResult], out_dir: str | Path) -> dict[str, Path]:
    """Write results.md, results.csv, results.json and results.png under ``out_dir``."""
    out_dir = Path(out_dir)
    rows = build_rows(grid, results)
    paths = {kind: out_dir / f"results.{kind}" for kind in ("md", "csv", "json", "png")}
    spent = budget(results)
    paths["md"].write_text(markdown_table(grid, rows, spent))
    ref = next(r for r in rows if r.is_reference)
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "setting",
                "reference",
                "params",
                "macs",
                "top1_mean",
                "top1_std",
                "top5_mean",
                "top5_std",
                "delta_top1",
                "seeds",
                "failed_seeds",
                "train_ms_per_image",
            ]
        )
        for r in rows:
            delta = (
                None
                if r.top1_mean is None or ref.top1_mean is None
                else r.top1_mean - ref.top1_mean
            )
            writer.writerow(
                [
                    r.label,
                    r.is_reference,
                    r.params,
                    r.macs,
                    r.top1_mean,
                    r.top1_std,
                    r.top5_mean,
                    r.top5_std,
                    delta,
                    len(r.seeds),
                    len(r.failed_seeds),
                    r.train_ms_per_image,
                ]
            )
    payload = {
        "grid": grid.to_dict(),
        "rows": [
            {
                **asdict(r),
                "top1_mean": r.top1_mean,
                "top1_std": r.top1_std,
                "top5_mean": r.top5_mean,
                "top5_std": r.top5_std,
            }
            for r in rows
        ],
        "runs": [
            {
                "run_id": res.point.run_id,
                "status": res.status,
                "dir": str(res.run_dir),
                "error": res.error,
            }
            for res in results
        ],
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str))
    _plot(grid.title + (f" ({spent})" if spent else ""), rows, paths["png"])
    return paths


def _plot(title: str, rows: list[Row], path: Path) -> None:
    shown = [r for r in rows if r.top1_mean is not None]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(shown)), 3.6))
    ax.bar(
        range(len(shown)),
        [r.top1_mean for r in shown],
        yerr=[r.top1_std or 0 for r in shown],
        capsize=4,
        color=["grey" if r.is_reference else "tab:blue" for r in shown],
    )
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([r.label for r in shown], rotation=30, ha="right", fontsize=8)
    low = min((r.top1_mean - (r.top1_std or 0) for r in shown), default=0)
    high = max((r.top1_mean + (r.top1_std or 0) for r in shown), default=100)
    ax.set_ylim(max(0, low - 2), min(100, high + 1))
    ax.set_ylabel("top-1 (%)")
    ax.set_title(textwrap.fill(title, 50), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
