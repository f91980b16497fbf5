"""The gate analyses of a grid's runs (``senet analyze RUN`` on each), digested for the study.

Nothing is analysed here: a finished run that holds ``analysis-<data>/saturation.json`` gets a
row. A run of a model with attention that holds none is named as not analysed yet; a baseline has
nothing to analyse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from senet.ablation.grid import Grid
from senet.ablation.runner import read_summary
from senet.analysis.saturation import saturation_digest


def grid_gates(
    grid: Grid, out_dir: str | Path, arms: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The gates of a grid's finished runs, in grid order, read in one pass: each analysed run's
    ``saturation_digest`` with label, seed and run id; and the run ids of the runs of the settings
    in ``arms`` (those with attention: the arms of the study's pairs) that hold no analysis yet,
    so that a study or its record is not published without gates that could have been measured.
    """
    digests, unanalysed = [], []
    for point in grid.points:
        run_dir = Path(out_dir) / "runs" / point.run_id
        summary = read_summary(run_dir)
        if summary is None:
            continue
        path = run_dir / f"analysis-{summary.data}" / "saturation.json"
        try:
            report = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            if point.label in arms:
                unanalysed.append(point.run_id)
            continue
        digests.append(
            {"label": point.label, "seed": point.seed, "run_id": point.run_id}
            | saturation_digest(report)
        )
    return digests, unanalysed


def _short(name: str) -> str:
    return name.removesuffix(".attn")


def gates_markdown(runs: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """The gates table (one row per analysed run) as markdown lines; none when no run was
    analysed. ``names``: how each setting label is shown."""
    if not runs:
        return []
    thresholds = " or ".join(sorted({f"{run['threshold']:g}" for run in runs}))
    lines = [
        f"Gates (`senet analyze` on each run, fp32; saturated: gate std over images < "
        f"{thresholds}; dead: hidden units whose output never changed):",
        "",
        "| setting | seed | saturated | blocks that vary (gate std) | dead hidden units "
        "| blocks with no live unit | top-1, saturated frozen |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for run in runs:
        varying = ", ".join(f"{_short(v['name'])} ({v['gate_std']:.3f})" for v in run["varying"])
        if run["dead_units"] is None:
            dead = lifeless = "not recorded"
        else:
            dead = f"{run['dead_units']} of {run['hidden_units']}"
            lifeless = ", ".join(_short(n) for n in run["lifeless"]) or "none"
        after = "—" if run["top1_after"] is None else f"{run['top1_after']:.2f}"
        lines.append(
            f"| {names.get(run['label'], run['label'])} | {run['seed']} "
            f"| {run['saturated']} of {run['blocks']} | {varying or 'none'} | {dead} | {lifeless} "
            f"| {run['top1_before']:.2f} -> {after} |"
        )
    return lines
