"""A grid's finished runs as a small, portable record: what the study reads, without weights.

A long grid outlives the machine it started on (a study spread over sessions or hosts). Its run
folders hold checkpoints and weights of megabytes each, but the study needs only each finished
run's summary, metrics and config, and the gate analysis where ``senet analyze`` was run. The
record keeps those, under the results folder's own layout, so it is itself a results folder:

    python -m senet.ablation.study RECORD                       # the study, from the record
    cp -r RECORD/. runs/ablations/NAME && senet ablate GRID --out runs/ablations/NAME
                                                    # the grid continues; recorded runs are reused

(``senet ablate`` reuses a recorded run as finished only after checking that the grid still
gives it the config its summary records.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from senet.ablation.runner import read_summary

GRID_FILES = ("grid.yaml",)
RUN_FILES = ("summary.json", "metrics.csv", "config.yaml")
ANALYSIS_FILES = ("saturation.json",)


def record_runs(out_dir: str | Path, record_dir: str | Path) -> list[str]:
    """Copy the record of every finished run in ``out_dir`` into ``record_dir`` (created, and
    added to: runs recorded there earlier stay); return the run ids copied now."""
    out_dir, record_dir = Path(out_dir), Path(record_dir)
    if not (out_dir / "grid.yaml").is_file():
        raise FileNotFoundError(f"{out_dir} has no grid.yaml: not a `senet ablate` results folder")
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
