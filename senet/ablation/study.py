"""A finished (or part-finished) grid folder -> the study report: cells, seed-paired differences.

    python -m senet.ablation.study runs/ablations/fashion_mnist_depth \
        --json docs/results/fashion_mnist.json --plot docs/results/fashion_mnist_depth.png

Reads ``grid.yaml`` and ``runs/*/summary.json`` that ``senet ablate`` leaves (nothing is trained),
and the gate analyses ``senet analyze`` left in run folders.
Pairs: in a grid whose ``model.name`` axis holds twins (``X`` and ``se_X``), each SE model against
its twin (the depth study); otherwise every setting against the reference row. Writes
``study.md`` and ``study.json`` into the folder (and copies where asked), and for twin grids the
accuracy-vs-depth plot.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from senet.ablation.gates import gates_markdown, grid_gates
from senet.ablation.grid import Grid, GridError, GridPoint, grid_from_dict
from senet.ablation.paired_stats import (
    Cell,
    PairedDifference,
    format_cell,
    format_difference,
    paired_difference,
)
from senet.ablation.records import record_runs
from senet.ablation.runner import read_summary
from senet.config import config_from_dict
from senet.plots import pyplot
from senet.train.resume import computation_differences

MODEL_AXIS = "model.name"


def load_study_grid(out_dir: str | Path) -> Grid:
    """The grid that ``senet ablate`` ran into ``out_dir`` (its saved ``grid.yaml``)."""
    path = Path(out_dir) / "grid.yaml"
    if not path.is_file():
        raise GridError(
            f"{out_dir} has no grid.yaml: not a `senet ablate` results folder "
            "(run `senet ablate GRID --out FOLDER` first)"
        )
    return grid_from_dict(yaml.safe_load(path.read_text()), source=None)


def _labels(grid: Grid) -> list[str]:
    return list(dict.fromkeys(p.label for p in grid.points))


def collect_cells(grid: Grid, out_dir: str | Path) -> tuple[list[Cell], dict[str, dict]]:
    """One cell per setting (grid order) and the summary of one finished run of each setting."""
    out_dir = Path(out_dir)
    errors = _run_errors(out_dir)
    cells = {label: Cell(label, list(grid.seeds)) for label in _labels(grid)}
    info: dict[str, dict] = {}
    for point in grid.points:
        cell = cells[point.label]
        summary = read_summary(out_dir / "runs" / point.run_id)
        if summary is None:
            if point.run_id in errors:
                cell.failed[point.seed] = errors[point.run_id]
            continue
        cell.top1[point.seed] = float(summary["final_top1"])
        info.setdefault(point.label, {"summaries": []})["summaries"].append(summary)
    return list(cells.values()), info


def _run_errors(out_dir: Path) -> dict[str, str]:
    # `senet ablate` records each failed run's error in results.json (after all retries).
    try:
        runs = json.loads((out_dir / "results.json").read_text())["runs"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}
    return {r["run_id"]: r.get("error") or "failed" for r in runs if r.get("status") == "failed"}


def twin_pairs(grid: Grid, twins_from: Grid | None = None) -> list[tuple[str, str]] | None:
    """(SE label, twin label) for a grid whose only axis is the model: each ``se_X`` against
    ``X`` of the same grid, or of ``twins_from``; None when there is no such pair."""
    names = grid.axes.get(MODEL_AXIS)
    if names is None or len(grid.axes) != 1 or grid.baseline is not None:
        return None
    twin_names = set((twins_from or grid).axes.get(MODEL_AXIS) or [])
    pairs = [
        (_point_label(n), _point_label(n[3:]))
        for n in names
        if n.startswith("se_") and n[3:] in twin_names
    ]
    return pairs or None


def external_twin_pairs(grid: Grid, twin_grid: Grid) -> list[tuple[str, str]]:
    """``twin_pairs`` of an SE-only grid against another grid's models without SE (an SE-only
    grid reusing a study's baselines); a GridError when there are none or seeds are missing."""
    pairs = twin_pairs(grid, twins_from=twin_grid)
    if pairs is None:
        raise GridError(
            f"--twins pairs a grid whose only axis is {MODEL_AXIS} with SE models (se_X) against "
            f"another grid's X; {grid.name} has axes {list(grid.axes)} and {twin_grid.name} "
            f"has models {sorted(twin_grid.axes.get(MODEL_AXIS) or [])}"
        )
    missing = sorted(set(grid.seeds) - set(twin_grid.seeds))
    if missing:
        raise GridError(f"the twins' grid {twin_grid.name} has no seed {missing} to pair with")
    return pairs


# What an SE arm may set that its twin without SE does not (the attention and its optimiser).
SE_ONLY_KEYS = ("model.name:", "model.attn", "optim.attn_weight_decay:")


def check_same_recipe(arm: str, arm_runs: list, twin: str, twin_runs: list) -> None:
    """Raise GridError when an SE arm's runs and its twin's (from two grids) differ in anything
    but SE; runs are compared seed by seed, from the configs their summaries record."""
    by_seed = {r["config"]["train"]["seed"]: r for r in twin_runs if r.get("config")}
    for run in arm_runs:
        other = by_seed.get((run.get("config") or {}).get("train", {}).get("seed"))
        if other is None:
            continue
        changed = [
            d
            for d in computation_differences(other["config"], config_from_dict(run["config"]))
            if not d.startswith(SE_ONLY_KEYS)
        ]
        if changed:
            raise GridError(
                f"cannot pair {arm} with {twin} from the twins' folder: their recipes differ in "
                f"{'; '.join(changed)}. Pair runs of the same recipe"
            )


def borrow_twins(
    grid: Grid, cells: list[Cell], info: dict[str, dict], twins_dir: str | Path
) -> tuple[list[tuple[str, str]], list[Cell]]:
    """The pairs of an SE-only grid with another grid's twins, and its cells with the twins'
    (restricted to this grid's seeds) put before their SE arms; ``info`` gains the twins'."""
    twin_grid = load_study_grid(twins_dir)
    twins = external_twin_pairs(grid, twin_grid)
    twin_cells, twin_info = collect_cells(twin_grid, twins_dir)
    wanted = {c.label: c for c in twin_cells if c.label in {t for _, t in twins}}
    for arm, twin in twins:
        check_same_recipe(
            arm,
            info.get(arm, {}).get("summaries", []),
            twin,
            twin_info.get(twin, {}).get("summaries", []),
        )
    for cell in wanted.values():
        cell.top1 = {s: v for s, v in cell.top1.items() if s in grid.seeds}
        cell.failed = {s: e for s, e in cell.failed.items() if s in grid.seeds}
        cell.expected_seeds = list(grid.seeds)
    info.update({t: twin_info[t] for t in wanted if t in twin_info})
    rank = {label: i for i, label in enumerate(label for pair in twins for label in pair[::-1])}
    merged = sorted([*wanted.values(), *cells], key=lambda c: rank.get(c.label, len(rank)))
    return twins, merged


def _point_label(model: str) -> str:
    return GridPoint(((MODEL_AXIS, model),), seed=0).label


def reference_pairs(grid: Grid) -> list[tuple[str, str]]:
    """Every setting against the reference row (the baseline, else the first point).

    With a baseline, each later setting is also paired with the first one (e.g. a width floor
    against the paper's r = 16 without one), so settings compare with each other, not only with
    the baseline.
    """
    labels = _labels(grid)
    reference = "baseline" if grid.baseline is not None else labels[0]
    pairs = [(label, reference) for label in labels if label != reference]
    if grid.baseline is not None:
        first, *later = [label for label in labels if label != reference]
        pairs += [(label, first) for label in later]
    return pairs


def pretty_model(name: str) -> str:
    """``se_resnet110_cifar`` -> ``SE-ResNet-110``; ``wrn16_8_cifar`` -> ``WRN-16-8``."""
    base = name.removeprefix("name=")
    se = base.startswith("se_")
    base = base.removeprefix("se_").removesuffix("_cifar")
    if m := re.fullmatch(r"resnet(\d+)", base):
        base = f"ResNet-{m.group(1)}"
    elif m := re.fullmatch(r"wrn(\d+)_(\d+)", base):
        base = f"WRN-{m.group(1)}-{m.group(2)}"
    return f"SE-{base}" if se else base


def adopt_earlier_cells(
    grid: Grid, cells: list[Cell], earlier: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Fill the cells that have no run in this folder from ``earlier``, a study.json of the same
    grid written where those runs were (a study spread over machines whose run folders did not
    all travel); return the adopted cells' earlier entries by label. A cell with any run here
    is this folder's alone: seeds are never mixed within a cell."""
    if earlier.get("study") != grid.name or earlier.get("seeds") != list(grid.seeds):
        raise GridError(
            f"the earlier study is {earlier.get('study')!r} with seeds {earlier.get('seeds')}, "
            f"not grid {grid.name!r} with seeds {list(grid.seeds)}: give that grid's study.json"
        )
    by_label = {c["label"]: c for c in earlier.get("cells", [])}
    adopted = {}
    for cell in cells:
        old = by_label.get(cell.label)
        if cell.top1 or cell.failed or old is None or not (old["top1"] or old["failed"]):
            continue
        cell.top1 = {int(seed): top1 for seed, top1 in old["top1"].items()}
        cell.failed = {int(seed): error for seed, error in old["failed"].items()}
        adopted[cell.label] = old
    return adopted


def build_study(
    grid: Grid,
    out_dir: str | Path,
    twins_dir: str | Path | None = None,
    earlier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The study as plain data (what ``study.json`` holds and the demo reads).

    ``twins_dir``: the results folder of another grid that holds the twins without SE (see
    ``external_twin_pairs``); their runs are paired by seed, after checking the recipes match.
    ``earlier``: an earlier study.json of this grid, whose cells fill those with no run here
    (``adopt_earlier_cells``); the study lists them under ``from_earlier``.
    """
    cells, info = collect_cells(grid, out_dir)
    adopted = adopt_earlier_cells(grid, cells, earlier) if earlier is not None else {}
    if twins_dir is None:
        twins = twin_pairs(grid)
    else:
        twins, cells = borrow_twins(grid, cells, info, twins_dir)
    total = len(cells) * len(grid.seeds)
    by_label = {c.label: c for c in cells}
    arm_pairs = twins or reference_pairs(grid)
    pairs = [paired_difference(by_label[a], by_label[r]) for a, r in arm_pairs]
    finished = sum(len(c.top1) for c in cells)
    status = "not yet run" if finished == 0 else "complete" if finished == total else "partial"
    first = next((s["summaries"][0] for s in info.values()), {})
    gates, unanalysed = grid_gates(grid, out_dir, {arm for arm, _ in arm_pairs})
    return {
        "study": grid.name,
        "title": grid.title,
        "command_line": list(grid.command_line),
        "status": status,
        "finished_runs": finished,
        "total_runs": total,
        "seeds": list(grid.seeds),
        "paired_by": "model twins" if twins else "reference row",
        "twins_from": str(twins_dir) if twins_dir is not None else None,
        "recipe": {
            k: first.get(k, (earlier or {}).get("recipe", {}).get(k))
            for k in ("epochs", "train_images", "val_images")
        },
        "from_earlier": list(adopted),
        "cells": [_cell_dict(c, info.get(c.label), adopted.get(c.label)) for c in cells],
        "pairs": [_pair_dict(p) for p in pairs],
        "gates": [
            *gates,
            *(g for g in (earlier or {}).get("gates", []) if g["label"] in adopted),
        ],
        "unanalysed": unanalysed,
    }


def _cell_dict(cell: Cell, info: dict | None, earlier: dict | None = None) -> dict[str, Any]:
    summaries = (info or {}).get("summaries", [])
    per_epoch = [s["train_seconds"] / s["epochs"] for s in summaries if s.get("train_seconds")]
    if earlier is not None:  # its runs are not here: their costs as the earlier study gave them
        return _cell_dict(cell, None) | {
            k: earlier.get(k) for k in ("params", "macs", "seconds_per_epoch")
        }
    return {
        "label": cell.label,
        "name": pretty_model(cell.label) if cell.label.startswith("name=") else cell.label,
        "complete": cell.complete,
        "top1": {str(s): v for s, v in sorted(cell.top1.items())},
        "mean": cell.mean,
        "std": cell.std,
        "missing_seeds": cell.missing_seeds,
        "failed": {str(s): e for s, e in cell.failed.items()},
        "params": summaries[0].get("params") if summaries else None,
        "macs": summaries[0].get("macs") if summaries else None,
        "seconds_per_epoch": sum(per_epoch) / len(per_epoch) if per_epoch else None,
        "shown": format_cell(cell),
    }


def _pair_dict(pair: PairedDifference) -> dict[str, Any]:
    interval = pair.interval
    return {
        "arm": pair.arm,
        "reference": pair.reference,
        "name": pretty_model(pair.reference) if pair.reference.startswith("name=") else pair.arm,
        "differences": {str(s): v for s, v in sorted(pair.differences.items())},
        "mean": pair.mean,
        "ci95": list(interval) if interval else None,
        "missing_seeds": pair.missing_seeds,
        "verdict": pair.verdict,
        "shown": format_difference(pair),
    }


def study_markdown(study: dict[str, Any]) -> str:
    """The study's tables: cells (mean ± std over seeds), the paired differences, and the gates of
    the runs that ``senet analyze`` has been run on."""
    seeds = ", ".join(map(str, study["seeds"]))
    lines = [
        f"### {study['title']}",
        "",
        *(
            [f"Run with `{' '.join(study['command_line'])}` on top of the grid file.", ""]
            if study.get("command_line")
            else []
        ),
        f"Status: {study['status']} ({study['finished_runs']}/{study['total_runs']} runs). "
        f"Seeds {seeds}. Final-epoch test top-1; a cell with a seed missing is marked, "
        "not averaged over fewer seeds.",
        "",
        *(
            [
                "Taken from the earlier study (their runs are not in this folder): "
                + ", ".join(pretty_model(label) for label in study["from_earlier"])
                + ".",
                "",
            ]
            if study.get("from_earlier")
            else []
        ),
        "| setting | params | MACs (M) | s/epoch | top-1 (%), mean ± std |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in study["cells"]:
        params = f"{c['params'] / 1e6:.3f}M" if c["params"] is not None else "—"
        macs = f"{c['macs'] / 1e6:.2f}" if c["macs"] is not None else "—"
        sec = f"{c['seconds_per_epoch']:.0f}" if c["seconds_per_epoch"] is not None else "—"
        lines.append(f"| {c['name']} | {params} | {macs} | {sec} | {c['shown']} |")
    twins = study["paired_by"] == "model twins"
    against = "its twin without SE" if twins else "the row named after the minus sign"
    if not study["pairs"]:  # one setting, no baseline: its runs pair with another grid's
        lines += [
            "",
            "No pairs in this grid (one setting, no baseline); pair its runs by seed with other "
            "runs: `senet compare RUNS --reference OTHER_RUNS`.",
        ]
    else:
        lines += [
            "",
            f"Paired by seed: setting - {against}, top-1 points, mean [95% Student t CI].",
            "",
            "| pair | per-seed differences | mean [95% CI] | verdict |",
            "|---|---|---:|---|",
        ]
    for p in study["pairs"]:
        diffs = " / ".join(f"{v:+.2f}" for v in p["differences"].values()) or "—"
        name = p["name"] if twins else f"{p['arm']} - {p['reference']}"
        lines.append(f"| {name} | {diffs} | {p['shown']} | {p['verdict']} |")
    gates = gates_markdown(study.get("gates", []), {c["label"]: c["name"] for c in study["cells"]})
    lines += ["", *gates] if gates else []
    if study.get("unanalysed"):
        lines += [
            "",
            "Gates not analysed yet (`senet analyze RUN` on each, then this command again): "
            + ", ".join(f"`{run_id}`" for run_id in study["unanalysed"])
            + ".",
        ]
    return "\n".join(lines) + "\n"


def plot_depth(study: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs depth: one line without SE, one with, error bars = std over seeds."""
    plt = pyplot()
    cells = {c["label"]: c for c in study["cells"]}
    names = [p["name"] for p in study["pairs"]]
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for key, label, colour in (("reference", "baseline", "grey"), ("arm", "SE", "tab:blue")):
        xs, ys, errs = [], [], []
        for i, p in enumerate(study["pairs"]):
            cell = cells[p[key]]
            if cell["mean"] is not None:  # an incomplete cell is left out, not drawn from fewer
                xs.append(i)
                ys.append(cell["mean"])
                errs.append(cell["std"] or 0.0)
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label=label, color=colour)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xlabel("depth")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{study['study']} ({study['status']})", fontsize=10)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_study(
    out_dir: str | Path,
    *,
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    twins_dir: str | Path | None = None,
    earlier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write study.md/study.json (and the depth plot for twin grids) under ``out_dir``."""
    out_dir = Path(out_dir)
    study = build_study(load_study_grid(out_dir), out_dir, twins_dir, earlier)
    (out_dir / "study.md").write_text(study_markdown(study))
    text = json.dumps(study, indent=2) + "\n"
    (out_dir / "study.json").write_text(text)
    if json_path is not None:
        Path(json_path).write_text(text)
    if study["paired_by"] == "model twins":
        plot_depth(study, plot_path or out_dir / "study.png")
    return study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m senet.ablation.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="a `senet ablate` results folder")
    parser.add_argument("--json", type=Path, help="also write study.json here")
    parser.add_argument("--plot", type=Path, help="the depth plot's path (default: in out_dir)")
    parser.add_argument(
        "--twins", type=Path, help="another grid's results folder holding the models without SE"
    )
    parser.add_argument(
        "--earlier",
        type=Path,
        help="a study.json of this grid written elsewhere: fills the cells with no run here",
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="also copy the finished runs' record (no weights) here; see senet.ablation.records",
    )
    args = parser.parse_args(argv)
    try:
        earlier = json.loads(args.earlier.read_text()) if args.earlier else None
        study = write_study(
            args.out_dir,
            json_path=args.json,
            plot_path=args.plot,
            twins_dir=args.twins,
            earlier=earlier,
        )
        recorded = record_runs(args.out_dir, args.record) if args.record else None
    except (GridError, OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(study_markdown(study))
    if recorded is not None:
        print(f"recorded {len(recorded)} finished run(s) in {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
