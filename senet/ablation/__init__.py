"""Ablation grids (paper Sec. 6): one factor at a time, over seeds, into paper-style tables."""

from senet.ablation.grid import Grid, GridError, GridPoint, grid_from_dict, load_grid
from senet.ablation.listing import describe_points
from senet.ablation.records import record_runs
from senet.ablation.report import build_rows, markdown_table, write_report
from senet.ablation.runner import PointResult, point_state, run_grid, selected_points

__all__ = [
    "Grid",
    "GridError",
    "GridPoint",
    "PointResult",
    "build_rows",
    "describe_points",
    "grid_from_dict",
    "load_grid",
    "markdown_table",
    "point_state",
    "record_runs",
    "run_grid",
    "selected_points",
    "write_report",
]
