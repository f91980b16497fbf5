"""A grid's finished runs as a small, portable record: what the study reads, without weights.

A long grid outlives the machine it started on (a study spread over sessions or hosts). Its run
folders hold checkpoints and weights of megabytes each, but the study needs only each finished
run's summary, metrics and config, and the gate analysis where ``senet analyze`` was run. The
record keeps those, under the results folder's own layout, so it is itself a results folder:

    senet study RECORD                                  # the study, from the record
    cp -r RECORD/. runs/ablations/NAME && senet ablate GRID --out runs/ablations/NAME
                                                    # the grid continues; recorded runs are reused

(``senet ablate`` reuses a recorded run as finished only after checking that the grid still
gives it the config its summary records.) ``check_record`` finds a record edited by hand: a
number changed in one file and not in the others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from senet.ablation.grid import Grid, GridError, grid_from_dict
from senet.ablation.runner import _check_still_fits, read_summary
from senet.train.run_log import read_metrics

GRID_FILES = ("grid.yaml",)
RUN_FILES = ("summary.json", "metrics.csv", "config.yaml")
ANALYSIS_FILES = ("saturation.json",)


def record_runs(out_dir: str | Path, record_dir: str | Path) -> list[str]:
    """Copy the record of every finished run in ``out_dir`` into ``record_dir`` (created, and
    added to: runs recorded there earlier stay); return the run ids copied now."""
    out_dir, record_dir = Path(out_dir), Path(record_dir)
    if not (out_dir / "grid.yaml").is_file():
        raise GridError(f"{out_dir} has no grid.yaml: not a `senet ablate` results folder")
    record_dir.mkdir(parents=True, exist_ok=True)
    for name in GRID_FILES:
        shutil.copy2(out_dir / name, record_dir / name)
    copied = []
    for run_dir in sorted((out_dir / "runs").glob("*")):
        if read_summary(run_dir) is None:  # unfinished: its record would say nothing yet
            continue
        target = record_dir / "runs" / run_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, target / name)
        for analysis in run_dir.glob("analysis-*"):
            for name in ANALYSIS_FILES:
                if (analysis / name).is_file():
                    (target / analysis.name).mkdir(exist_ok=True)
                    shutil.copy2(analysis / name, target / analysis.name / name)
        copied.append(run_dir.name)
    return copied


def check_record(record_dir: str | Path, grid: Grid | None = None) -> list[str]:
    """What is inconsistent in a record, one line each (empty when it is whole).

    Each run's files must agree with each other: the summary's config is ``config.yaml``, its
    final and best top-1 and its epochs are those of ``metrics.csv``, and its run id is a point
    of the record's ``grid.yaml``. With ``grid`` (the grid file that ran it), every run must also
    have the config that grid gives its point, as ``senet ablate`` checks before reusing it.
    """
    record_dir = Path(record_dir)
    saved = grid_from_dict(yaml.safe_load((record_dir / "grid.yaml").read_text()))
    points = {p.run_id: p for p in (grid or saved).points}
    problems = []
    for run_dir in sorted((record_dir / "runs").iterdir()):
        where = f"{run_dir.name}:"
        if run_dir.name not in points:
            problems.append(f"{where} not a point of grid {(grid or saved).name}")
            continue
        missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
        if missing:
            problems.append(f"{where} missing {', '.join(missing)}")
            continue
        problems += [f"{where} {p}" for p in _run_disagreements(run_dir)]
        if grid is not None:
            try:
                _check_still_fits(grid, points[run_dir.name], run_dir, read_summary(run_dir))
            except ValueError as e:
                problems.append(f"{where} {e}")
    return problems


def _run_disagreements(run_dir: Path) -> list[str]:
    summary = json.loads((run_dir / "summary.json").read_text())
    top1 = [float(row["val_top1"]) for row in read_metrics(run_dir)]
    found = []
    if yaml.safe_load((run_dir / "config.yaml").read_text()) != summary.get("config"):
        found.append("summary.json's config is not config.yaml")
    expected = {
        "final_top1": top1[-1] if top1 else None,
        "best_top1": max(top1) if top1 else None,
        "epochs": len(top1),
    }
    for key, value in expected.items():
        if summary.get(key) != value:
            found.append(f"summary.json's {key} {summary.get(key)} is not metrics.csv's {value}")
    return found
