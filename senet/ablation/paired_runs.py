"""Seed-paired comparison of finished run folders: an arm's runs against a reference's runs.

Runs made outside a grid (``senet train``, ``benchmarks/time_to_accuracy.py``) get the same
statistics as a grid's cells: per-side mean ± std over seeds and arm - reference per seed with a
95% CI. Each run's seed is the one its resolved config records, so folder names do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from glob import glob, has_magic
from pathlib import Path

from rich.table import Table

from senet.ablation.paired_stats import (
    Cell,
    PairedDifference,
    format_cell,
    format_difference,
    paired_difference,
)
from senet.config import ConfigError
from senet.train.summary import RunSummary

METRICS = ("final_top1", "final_flip_top1", "final_ema_top1", "best_top1")


@dataclass
class PairedRuns:
    arm: Cell
    reference: Cell
    difference: PairedDifference
    metric: str
    folders: dict[str, dict[int, Path]]  # side label -> seed -> run folder

    def table(self) -> Table:
        seeds = self.difference.expected_seeds
        table = Table(title=f"Paired by seed ({self.metric})")
        table.add_column("runs")
        table.add_column("mean ± std", justify="right")
        for seed in seeds:
            table.add_column(f"seed {seed}", justify="right")
        for cell in (self.arm, self.reference):
            values = [f"{cell.top1[s]:.2f}" if s in cell.top1 else "-" for s in seeds]
            table.add_row(cell.label, format_cell(cell), *values)
        diffs = self.difference.differences
        table.add_row(
            f"{self.arm.label} - {self.reference.label}",
            f"{format_difference(self.difference)} ({self.difference.verdict})",
            *(f"{diffs[s]:+.2f}" if s in diffs else "-" for s in seeds),
        )
        return table


def expand_run_folders(patterns: list[str | Path]) -> list[Path]:
    """Folders as given, or the sorted folders a glob pattern matches (quoted so the shell keeps
    it; files it matches, such as a run's log beside its folder, are not runs)."""
    folders: list[Path] = []
    for pattern in map(str, patterns):
        if has_magic(pattern):
            matches = sorted(m for m in glob(pattern) if Path(m).is_dir())
            if not matches:
                raise ConfigError(f"no run folder matches {pattern!r}")
            folders += map(Path, matches)
        else:
            folders.append(Path(pattern))
    return folders


def compare_paired(
    arm_runs: list[str | Path],
    reference_runs: list[str | Path],
    *,
    metric: str = "final_top1",
) -> PairedRuns:
    """``arm_runs`` - ``reference_runs`` paired by seed on ``metric`` (percent top-1)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    arm_label, arm = _by_seed(expand_run_folders(arm_runs), metric)
    ref_label, ref = _by_seed(expand_run_folders(reference_runs), metric)
    if arm_label == ref_label:
        arm_label, ref_label = "arm", "reference"
    seeds = sorted(set(arm) | set(ref))
    arm_cell = Cell(arm_label, seeds, {s: v for s, (v, _) in arm.items()})
    ref_cell = Cell(ref_label, seeds, {s: v for s, (v, _) in ref.items()})
    return PairedRuns(
        arm=arm_cell,
        reference=ref_cell,
        difference=paired_difference(arm_cell, ref_cell),
        metric=metric,
        folders={
            arm_label: {s: f for s, (_, f) in arm.items()},
            ref_label: {s: f for s, (_, f) in ref.items()},
        },
    )


def _by_seed(folders: list[Path], metric: str) -> tuple[str, dict[int, tuple[float, Path]]]:
    """(label, seed -> (value, folder)); the label is the runs' models (see ``_run_label``)."""
    if not folders:
        raise ConfigError("no run folders given for one side of the comparison")
    runs: dict[int, tuple[float, Path]] = {}
    models: list[str] = []
    for folder in folders:
        if not (folder / "summary.json").is_file():
            raise ConfigError(
                f"{folder} is not a finished senet run (no summary.json): finish or resume it "
                "first, or leave it out"
            )
        summary = RunSummary.read(folder)
        seed = (summary.config or {}).get("train", {}).get("seed")
        if seed is None:
            raise ConfigError(f"{folder}/summary.json records no train.seed: cannot pair it")
        value = getattr(summary, metric)
        if value is None:
            hint = " (train with train.eval_flip=true)" if metric == "final_flip_top1" else ""
            raise ConfigError(f"{folder} has no {metric}{hint}")
        if seed in runs:
            raise ConfigError(
                f"{folder} and {runs[seed][1]} both ran seed {seed}: give one run per seed a side"
            )
        runs[seed] = (float(value), folder)
        label = _run_label(summary)
        if label not in models:
            models.append(label)
    return " + ".join(models), runs


def _run_label(summary: RunSummary) -> str:
    """The model's name, with the attention its config put into it (``model.attn``): a control
    such as ``resnet110_cifar`` with ``attn=scale`` must not read as the plain network."""
    attn = (summary.config or {}).get("model", {}).get("attn")
    return f"{summary.model} (attn={attn})" if attn else summary.model
