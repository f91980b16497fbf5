"""``senet ablate --dry-run``: a grid's points, each with where it stands in a results folder."""

from __future__ import annotations

from pathlib import Path

from senet.ablation.grid import Grid
from senet.ablation.runner import point_state, selected_points

_KINDS = ("finished", "training", "unfinished", "started", "not started")


def describe_points(grid: Grid, out_dir: Path, only: list[str] | None = None) -> str:
    """One line per selected point (its run id, overrides and state in ``out_dir``), then a
    line with the counts of each state and where results go."""
    points = selected_points(grid, only)
    states = {p.run_id: point_state(grid, p, out_dir / "runs" / p.run_id) for p in points}
    lines = []
    for point in points:
        kind, words = states[point.run_id]
        shown = "" if kind == "not started" else f"  [{words}]"
        lines.append(f"{point.run_id}: {' '.join(point.overrides())}{shown}")
    kinds = [kind for kind, _ in states.values()]
    standing = ", ".join(f"{kinds.count(k)} {k}" for k in _KINDS if k in kinds)
    where = f"results go to {out_dir}" + (f" ({standing})" if out_dir.exists() else "")
    chosen = f"{len(points)} of {len(grid.points)} runs selected (--only)" if only else ""
    lines.append(f"{chosen or f'{len(grid.points)} runs'}; {where}")
    return "\n".join(lines)
