"""`senet analyze`: gate statistics, specificity by depth and saturation of a trained model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.table import Table

from senet.analysis.gates import GateStatistics, collect_gates
from senet.analysis.plots import plot_class_gates, plot_specificity
from senet.analysis.saturation import saturation_digest, saturation_report
from senet.config import ConfigError
from senet.evaluation import EvalSource
from senet.plots.stn import find_stn, save_rectified
from senet.train import evaluate_loader


@dataclass
class GateAnalysis:
    """What ``analyze_weights`` found; ``to_dict()`` is its JSON-ready summary.

    ``blocks``: per attention block its name, depth, channels, specificity, mean gate and gate
    std (``gates.json`` holds the full vectors); ``saturation``: ``saturation.json``'s content.
    """

    model: str
    weights: Path
    data: str
    images: int
    blocks: list[dict[str, Any]]
    saturation: dict[str, Any]
    output_dir: Path
    stn_picture: Path | None
    stats: GateStatistics = field(repr=False)  # every block's gates by class

    def to_dict(self) -> dict[str, Any]:
        """The summary with paths as text, without the full gate statistics."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stats"}
        stn = self.stn_picture
        return {
            **out,
            "weights": str(self.weights),
            "output_dir": str(self.output_dir),
            "stn_picture": str(stn) if stn else None,
        }


_BLOCK_SUMMARY = (
    "name",
    "depth",
    "channels",
    "specificity",
    "mean_gate",
    "gate_std",
    "hidden_units",
    "dead_units",
)


def analyze_weights(
    source: EvalSource,
    *,
    classes: list[int] | None = None,
    threshold: float = 0.02,
    output_dir: str | Path | None = None,
) -> GateAnalysis:
    """Gate analysis of a trained model on the val split of its data (paper Sec. 7).

    Writes into ``output_dir`` (default: ``analysis-<data>`` beside the weights):
    ``gates.json`` (per block: class-mean and overall gate vectors, specificity),
    ``class_gates.png`` (Fig. 6-style curves), ``specificity.png`` (specificity vs depth) and
    ``saturation.json`` (near-constant blocks, and top-1 before/after freezing them); for a model
    with a spatial transformer in front, ``stn_rectified.png`` (inputs and the STN's outputs).
    """
    if source.size is not None and source.size < 2:
        # A gate's spread and a hidden unit's range need two images to be more than zero: with
        # one, every block would read as saturated and every unit as dead.
        raise ConfigError(
            f"gate analysis needs at least 2 images, got size={source.size}; pass --size N with "
            "N >= 2 (specificity needs images of several classes: a few hundred is typical), "
            "or leave --size out to use the whole validation split"
        )
    run = source.prepare()
    model, loader, dev = run.model, run.loader, run.device
    out = Path(output_dir) if output_dir else run.weights.parent / f"analysis-{run.info.name}"
    out.mkdir(parents=True, exist_ok=True)
    stn_picture = None
    if find_stn(model) is not None:  # a model trained with model.stn: what its STN does
        stn_picture = save_rectified(model, run.dataset, out / "stn_rectified.png")
    try:
        stats = collect_gates(
            model, loader, num_classes=run.info.num_classes, class_names=run.class_names, device=dev
        )
    except ValueError as e:
        if stn_picture is None:
            raise
        raise ConfigError(f"{e} (the STN's inputs and outputs are in {stn_picture})") from None
    gates = stats.to_dict()
    (out / "gates.json").write_text(json.dumps(gates) + "\n")
    plot_class_gates(stats, out / "class_gates.png", classes=classes)
    plot_specificity(stats, out / "specificity.png")

    def top1(m: Any) -> float:
        return evaluate_loader(m.to(dev), loader, device=dev)["top1"]

    saturation = saturation_report(model, stats, top1, threshold=threshold)
    (out / "saturation.json").write_text(json.dumps(saturation, indent=2) + "\n")
    return GateAnalysis(
        model=source.model_name,
        weights=run.weights,
        data=run.info.name,
        images=int(stats.blocks[0].count.sum()),
        blocks=[{k: b[k] for k in _BLOCK_SUMMARY} for b in gates["blocks"]],
        saturation=saturation,
        output_dir=out,
        stn_picture=stn_picture,
        stats=stats,
    )


def analysis_table(report: GateAnalysis) -> Table:
    """Per block: channels, class specificity, mean and spread (std over images) of the gate,
    saturation, and its dead hidden units where the excitation has a hidden layer. Fits 80
    columns, the demo's terminal."""
    table = Table(title=f"Gates of {report.model} on {report.data} ({report.images:,} images)")
    columns = (
        "block",
        "C",
        "specificity",
        "mean",
        "std",
        "saturated",
        "dead units",
    )
    widest = max((len(b["name"]) for b in report.blocks), default=0)
    table.add_column(columns[0], no_wrap=True, min_width=widest)  # names stay whole
    for column in columns[1:]:
        table.add_column(column, justify="right")
    saturated = {b["name"]: b["saturated"] for b in report.saturation["blocks"]}
    for b in report.blocks:
        dead = "" if b["hidden_units"] is None else f"{b['dead_units']} of {b['hidden_units']}"
        table.add_row(
            b["name"],
            str(b["channels"]),
            f"{b['specificity']:.3f}",
            f"{b['mean_gate']:.3f}",
            f"{b['gate_std']:.3f}",
            "yes" if saturated[b["name"]] else "",
            dead,
        )
    return table


def saturation_summary(report: GateAnalysis) -> str:
    """One line: which blocks were frozen to their mean gate, and what it cost in accuracy."""
    sat = report.saturation
    if not sat["replaced"]:
        return (
            f"no saturated block (gate std < {sat['threshold']}); top-1 {sat['top1_before']:.2f}%"
        )
    line = (
        f"froze {len(sat['replaced'])} saturated block(s) to their mean gate: top-1 "
        f"{sat['top1_before']:.2f}% -> {sat['top1_after']:.2f}%, "
        f"{sat['params_saved']:,} of {sat['params_total']:,} params saved"
    )
    # A block with no live hidden unit is constant whatever its weights: width, not decay.
    lifeless = saturation_digest(sat)["lifeless"]
    if lifeless:
        line += f"; {len(lifeless)} with every hidden unit dead ({', '.join(lifeless)})"
    return line
