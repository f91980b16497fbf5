"""A finished (or part-finished) grid folder -> the study report: cells, seed-paired differences.

    senet study runs/ablations/fashion_mnist_depth

Reads ``grid.yaml`` and ``runs/*/summary.json`` that ``senet ablate`` leaves (nothing is trained),
and the gate analyses ``senet analyze`` left in run folders; a record (``senet.ablation.records``)
reads the same. Pairs: in a grid whose ``model.name`` axis holds twins (``X`` and ``se_X``), each
SE model against its twin (the depth study); with ``against_dir``, every setting against every
setting of another grid's folder (a control against a study's arms); otherwise every setting
against the reference row. Writes ``study.md`` and ``study.json`` into the folder (and copies
where asked), and for twin grids the accuracy-vs-depth plot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


def borrow_references(
    grid: Grid, cells: list[Cell], info: dict[str, dict], against_dir: str | Path
) -> tuple[list[tuple[str, str]], list[Cell]]:
    """Every setting of ``grid`` paired with every setting that has runs in ``against_dir``,
    another grid's folder (a control paired with a study's arms), after checking seed by seed
    that their recipes differ only in the model and its attention. Returns the pairs and the
    cells, the other grid's (restricted to this grid's seeds) after this grid's; ``info`` gains
    the other grid's."""
    other = load_study_grid(against_dir)
    other_cells, other_info = collect_cells(other, against_dir)
    references = [c for c in other_cells if c.top1 or c.failed]
    if not references:
        raise GridError(f"{against_dir} holds no finished run of grid {other.name} to pair with")
    clash = sorted({c.label for c in cells} & {c.label for c in references})
    if clash:
        raise GridError(
            f"{grid.name} and {other.name} both have settings {clash}: their pairs would be "
            "ambiguous; pair them with `senet compare RUNS --reference OTHER_RUNS` instead"
        )
    for arm in cells:
        for reference in references:
            check_same_recipe(
                arm.label,
                info.get(arm.label, {}).get("summaries", []),
                reference.label,
                other_info.get(reference.label, {}).get("summaries", []),
            )
    for cell in references:
        cell.top1 = {s: v for s, v in cell.top1.items() if s in grid.seeds}
        cell.failed = {s: e for s, e in cell.failed.items() if s in grid.seeds}
        cell.expected_seeds = list(grid.seeds)
    info.update({c.label: other_info[c.label] for c in references if c.label in other_info})
    pairs = [(arm.label, reference.label) for arm in cells for reference in references]
    return pairs, [*cells, *references]


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


def read_earlier(path: str | Path) -> dict[str, Any]:
    """An earlier study.json (``build_study``'s ``earlier``), or a GridError saying what is wrong."""
    try:
        earlier = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"cannot read the earlier study {path}: {e}") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("cells"), list):
        raise GridError(f"{path} is not a study.json (written by `senet study`): it has no cells")
    return earlier


def build_study(
    grid: Grid,
    out_dir: str | Path,
    twins_dir: str | Path | None = None,
    earlier: dict[str, Any] | None = None,
    against_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The study as plain data (what ``study.json`` holds; ``demo_summary`` trims it).

    ``twins_dir``: the results folder of another grid that holds the twins without SE (see
    ``external_twin_pairs``); their runs are paired by seed, after checking the recipes match.
    ``against_dir``: another grid's folder whose settings every setting here is paired with
    (``borrow_references``). ``earlier``: an earlier study.json of this grid, whose cells fill
    those with no run here (``adopt_earlier_cells``); the study lists them under
    ``from_earlier``, and the tables mark them: their runs were not kept.
    """
    if twins_dir is not None and against_dir is not None:
        raise GridError("give the twins' folder or a folder to pair against, not both")
    cells, info = collect_cells(grid, out_dir)
    adopted = adopt_earlier_cells(grid, cells, earlier) if earlier is not None else {}
    twins = twin_pairs(grid) if twins_dir is None and against_dir is None else None
    against = None
    if twins_dir is not None:
        twins, cells = borrow_twins(grid, cells, info, twins_dir)
    elif against_dir is not None:
        against, cells = borrow_references(grid, cells, info, against_dir)
    total = len(cells) * len(grid.seeds)
    by_label = {c.label: c for c in cells}
    arm_pairs = twins or against or reference_pairs(grid)
    pairs = [paired_difference(by_label[a], by_label[r]) for a, r in arm_pairs]
    finished = sum(len(c.top1) for c in cells)
    status = "not yet run" if finished == 0 else "complete" if finished == total else "partial"
    first = next((s["summaries"][0] for s in info.values()), {})
    # A control paired against another grid (a fixed scale) may have no gates to analyse.
    gated = set() if against else {arm for arm, _ in arm_pairs}
    gates, unanalysed = grid_gates(grid, out_dir, gated)
    return {
        "study": grid.name,
        "title": grid.title,
        "command_line": list(grid.command_line),
        "status": status,
        "finished_runs": finished,
        "total_runs": total,
        "seeds": list(grid.seeds),
        "paired_by": "model twins" if twins else "another grid" if against else "reference row",
        "twins_from": str(twins_dir) if twins_dir is not None else None,
        "against": str(against_dir) if against_dir is not None else None,
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


# Marks a cell adopted from an earlier study (``--earlier``): its runs are not in the folder.
NOT_KEPT = "†"
NOT_KEPT_NOTE = (
    f"{NOT_KEPT} runs not kept: taken from an earlier study's summary (`--earlier`), "
    "not recomputable."
)


def shown_name(study: dict[str, Any], label: str) -> str:
    """How a setting is named in the tables: its cell's name, marked when its runs are gone."""
    name = next((c["name"] for c in study["cells"] if c["label"] == label), label)
    return f"{name} {NOT_KEPT}" if label in study.get("from_earlier", []) else name


def cells_markdown(study: dict[str, Any]) -> list[str]:
    """The cells table: cost, epoch time and final top-1 per setting (mean ± std, per seed)."""
    lines = [
        "| setting | params | MACs (M) | s/epoch | top-1 (%), mean ± std | per seed |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in study["cells"]:
        params = f"{c['params'] / 1e6:.3f}M" if c["params"] is not None else "—"
        macs = f"{c['macs'] / 1e6:.2f}" if c["macs"] is not None else "—"
        sec = f"{c['seconds_per_epoch']:.0f}" if c["seconds_per_epoch"] is not None else "—"
        seeds = " / ".join(f"{v:.2f}" for v in c["top1"].values()) or "—"
        name = shown_name(study, c["label"])
        lines.append(f"| {name} | {params} | {macs} | {sec} | {c['shown']} | {seeds} |")
    return [*lines, *(["", NOT_KEPT_NOTE] if study.get("from_earlier") else [])]


def pairs_markdown(study: dict[str, Any]) -> list[str]:
    """The seed-paired differences: per seed, mean [95% CI] and verdict (none without pairs)."""
    if not study["pairs"]:  # one setting, no baseline: its runs pair with another grid's
        return [
            "No pairs in this grid (one setting, no baseline); pair its runs by seed with other "
            "runs: `senet compare RUNS --reference OTHER_RUNS`, or `senet study DIR --against "
            "OTHER_DIR`."
        ]
    twins = study["paired_by"] == "model twins"
    against = "its twin without SE" if twins else "the setting named after the minus sign"
    lines = [
        f"Paired by seed: setting - {against}, top-1 points, mean [95% Student t CI].",
        "",
        "| pair | per-seed differences | mean [95% CI] | verdict |",
        "|---|---|---:|---|",
    ]
    for p in study["pairs"]:
        diffs = " / ".join(f"{v:+.2f}" for v in p["differences"].values()) or "—"
        arm, reference = shown_name(study, p["arm"]), shown_name(study, p["reference"])
        name = p["name"] if twins else f"{arm} - {reference}"
        if twins and NOT_KEPT in arm + reference:
            name += f" {NOT_KEPT}"
        lines.append(f"| {name} | {diffs} | {p['shown']} | {p['verdict']} |")
    return lines


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
        *cells_markdown(study),
        "",
        *pairs_markdown(study),
    ]
    names = {c["label"]: shown_name(study, c["label"]) for c in study["cells"]}
    gates = gates_markdown(study.get("gates", []), names)
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
    against_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Write study.md/study.json (and the depth plot for twin grids) under ``out_dir``."""
    out_dir = Path(out_dir)
    study = build_study(load_study_grid(out_dir), out_dir, twins_dir, earlier, against_dir)
    (out_dir / "study.md").write_text(study_markdown(study))
    text = json.dumps(study, indent=2) + "\n"
    (out_dir / "study.json").write_text(text)
    if json_path is not None:
        Path(json_path).write_text(text)
    if study["paired_by"] == "model twins":
        plot_depth(study, plot_path or out_dir / "study.png")
    return study


# The fields of a study that `senet demo` prints: the study's cells and pairs, without the paths,
# costs and gates (a few KB, shipped as senet/demo_summary.json).
SUMMARY_CELL_KEYS = ("label", "name", "top1", "failed", "shown")
SUMMARY_PAIR_KEYS = ("arm", "reference", "name", "shown", "verdict")


def demo_summary(study: dict[str, Any]) -> dict[str, Any]:
    """The small summary of ``study`` that the demo prints beside its own short run."""
    keys = ("study", "title", "status", "finished_runs", "total_runs", "seeds", "recipe")
    return {
        **{key: study[key] for key in keys},
        "from_earlier": list(study.get("from_earlier", [])),
        "cells": [{k: c[k] for k in SUMMARY_CELL_KEYS} for c in study["cells"]],
        "pairs": [{k: p[k] for k in SUMMARY_PAIR_KEYS} for p in study["pairs"]],
    }


def write_summary(study: dict[str, Any], path: str | Path) -> Path:
    """Write ``demo_summary(study)`` as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(demo_summary(study), indent=1, ensure_ascii=False) + "\n")
    return path


@dataclass
class StudyOutputs:
    """Where ``run_study`` writes besides the folder's own study.md/study.json (None: nowhere)."""

    json_path: Path | None = None  # a copy of study.json
    plot_path: Path | None = None  # the depth plot (twin grids; default: in the folder)
    record_dir: Path | None = None  # the finished runs' record (``record_runs``)
    summary_path: Path | None = None  # the demo's summary (``write_summary``)


def run_study(
    folder: str | Path,
    outputs: StudyOutputs,
    twins_dir: str | Path | None = None,
    against_dir: str | Path | None = None,
    earlier_path: str | Path | None = None,
) -> tuple[dict[str, Any], list[str] | None]:
    """``senet study FOLDER``: write the study (and the outputs asked for); return it and the
    run ids recorded (None when no record was asked for). A file that cannot be written is a
    GridError naming it."""
    earlier = read_earlier(earlier_path) if earlier_path is not None else None
    try:
        study = write_study(
            folder,
            json_path=outputs.json_path,
            plot_path=outputs.plot_path,
            twins_dir=twins_dir,
            earlier=earlier,
            against_dir=against_dir,
        )
        recorded = record_runs(folder, outputs.record_dir) if outputs.record_dir else None
        if outputs.summary_path is not None:
            write_summary(study, outputs.summary_path)
    except OSError as e:
        raise GridError(f"cannot write the study's outputs: {e}") from None
    return study, recorded
