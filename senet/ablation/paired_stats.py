"""Seed-paired statistics of a grid: per-cell mean +- std and arm - reference with a 95% CI.

Two settings trained with the same seed share the data order and initial draw of every shared
layer, so their difference per seed has less noise than the difference of their means. A cell
(one setting) or a pair with a seed missing is reported as incomplete, never averaged over fewer
seeds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

# Two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (standard tables).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (beyond 30: the next tabled df at or below)."""
    if df < 1:
        raise ValueError(f"a t quantile needs df >= 1 (two or more seeds), got df={df}")
    if df <= len(_T975):
        return _T975[df - 1]
    value = _T975[-1]
    for at, quantile in _T975_LARGE:
        if df >= at:
            value = quantile
    return value if df < 1000 else 1.960


@dataclass
class Cell:
    """One setting's final top-1 per seed; its statistics only when every expected seed finished."""

    label: str
    expected_seeds: list[int]
    top1: dict[int, float] = field(default_factory=dict)  # seed -> final test top-1 (%)
    failed: dict[int, str] = field(default_factory=dict)  # seed -> error of a failed run

    @property
    def missing_seeds(self) -> list[int]:
        return [s for s in self.expected_seeds if s not in self.top1]

    @property
    def complete(self) -> bool:
        return not self.missing_seeds

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.top1.values()) if self.complete else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (n - 1), None below two seeds or incomplete."""
        if not self.complete or len(self.top1) < 2:
            return None
        return statistics.stdev(self.top1.values())


@dataclass
class PairedDifference:
    """arm - reference, paired by seed, with a two-sided 95% Student t interval."""

    arm: str
    reference: str
    expected_seeds: list[int]
    differences: dict[int, float] = field(default_factory=dict)  # seed -> arm - reference
    missing_seeds: list[int] = field(default_factory=list)  # seeds lacking in either arm

    @property
    def complete(self) -> bool:
        return not self.missing_seeds

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.differences.values()) if self.complete else None

    @property
    def half_width(self) -> float | None:
        """t_{0.975, n-1} * s / sqrt(n); None below two seeds or when a seed is missing."""
        n = len(self.differences)
        if not self.complete or n < 2:
            return None
        return t_quantile_975(n - 1) * statistics.stdev(self.differences.values()) / math.sqrt(n)

    @property
    def interval(self) -> tuple[float, float] | None:
        mean, half = self.mean, self.half_width
        return None if mean is None or half is None else (mean - half, mean + half)

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` when the CI excludes 0, ``no difference`` when it spans it."""
        interval = self.interval
        if interval is None:
            return "incomplete" if not self.complete else "one seed: no interval"
        if interval[0] > 0:
            return "better"
        if interval[1] < 0:
            return "worse"
        return "no difference"


def paired_difference(arm: Cell, reference: Cell) -> PairedDifference:
    """``arm`` - ``reference`` per seed over the seeds both cells expect."""
    seeds = [s for s in arm.expected_seeds if s in reference.expected_seeds]
    if not seeds:
        raise ValueError(f"{arm.label} and {reference.label} share no seed: nothing to pair")
    both = [s for s in seeds if s in arm.top1 and s in reference.top1]
    return PairedDifference(
        arm=arm.label,
        reference=reference.label,
        expected_seeds=seeds,
        differences={s: arm.top1[s] - reference.top1[s] for s in both},
        missing_seeds=[s for s in seeds if s not in both],
    )


def format_cell(cell: Cell) -> str:
    """``93.80 ± 0.12``, or what is missing: ``missing (2/3 seeds; seed 1 failed)``."""
    if cell.complete:
        return f"{cell.mean:.2f}" + (f" ± {cell.std:.2f}" if cell.std is not None else "")
    return f"missing ({len(cell.top1)}/{len(cell.expected_seeds)} seeds{_why(cell)})"


def _why(cell: Cell) -> str:
    failed = [s for s in cell.missing_seeds if s in cell.failed]
    not_run = [s for s in cell.missing_seeds if s not in cell.failed]
    parts = []
    if failed:
        parts.append(f"seed {', '.join(map(str, failed))} failed")
    if not_run:
        parts.append(f"seed {', '.join(map(str, not_run))} not run")
    return "; " + "; ".join(parts)


def format_difference(pair: PairedDifference) -> str:
    """``+0.40 [+0.10, +0.70]``, ``+0.40`` (one seed), or ``missing (seed 2)``."""
    if not pair.complete:
        return f"missing (seed {', '.join(map(str, pair.missing_seeds))})"
    interval = pair.interval
    if interval is None:
        return f"{pair.mean:+.2f}"
    return f"{pair.mean:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]"
