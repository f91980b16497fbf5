"""`senet analyze`: gate statistics, specificity by depth and saturation of a trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from senet.analysis.gates import collect_gates
from senet.analysis.plots import plot_class_gates, plot_specificity
from senet.analysis.saturation import saturation_report
from senet.config import ConfigError
from senet.data import create_loader
from senet.evaluation import evaluate, prepare_evaluation, resolve_device
from senet.plots.stn import find_stn, save_rectified


def run_folder_source(run_dir: str | Path) -> dict[str, Any]:
    """Model name, weights file, dataset and data root of a `senet train` run folder."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a senet run folder (no config.yaml); pass a run folder written by "
            "`senet train`, or MODEL --weights FILE --data NAME"
        )
    config = yaml.safe_load(config_path.read_text())
    for name in ("best.safetensors", "last.safetensors"):
        if (run_dir / name).is_file():
            weights = run_dir / name
            break
    else:
        raise ConfigError(f"{run_dir} holds no best.safetensors or last.safetensors to analyse")
    return {
        "model_name": config["model"]["name"],
        "weights": weights,
        "data": config["data"]["name"],
        "root": config["data"].get("root"),
    }


def analyze_weights(
    model_name: str,
    weights: str | Path,
    data: str,
    *,
    root: str | None = None,
    size: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    workers: int | None = None,
    download: bool = False,
    classes: list[int] | None = None,
    threshold: float = 0.02,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Gate analysis of a trained model on the val split of ``data`` (paper Sec. 7).

    Writes into ``output_dir`` (default: ``analysis-<data>`` beside the weights):
    ``gates.json`` (per block: class-mean and overall gate vectors, specificity),
    ``class_gates.png`` (Fig. 6-style curves), ``specificity.png`` (specificity vs depth) and
    ``saturation.json`` (near-constant blocks, and top-1 before/after freezing them); for a model
    with a spatial transformer in front, ``stn_rectified.png`` (inputs and the STN's outputs).
    """
    setup = prepare_evaluation(model_name, weights, data, root=root, size=size, download=download)
    dev = resolve_device(device)
    model = setup.model.to(dev)
    loader = create_loader(
        setup.dataset, batch_size=batch_size, train=False, device=dev, workers=workers
    )
    names = setup.info.classes or [str(k) for k in range(setup.info.num_classes)]
    out = Path(output_dir) if output_dir else setup.weights.parent / f"analysis-{setup.info.name}"
    out.mkdir(parents=True, exist_ok=True)
    stn_picture = None
    if find_stn(model) is not None:  # a model trained with model.stn: what its STN does
        stn_picture = save_rectified(model, setup.dataset, out / "stn_rectified.png")
    try:
        stats = collect_gates(
            model, loader, num_classes=setup.info.num_classes, class_names=names, device=dev
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
        return evaluate(m.to(dev), loader, device=dev)["top1"]

    saturation = saturation_report(model, stats, top1, threshold=threshold)
    (out / "saturation.json").write_text(json.dumps(saturation, indent=2) + "\n")
    return {
        "model": model_name,
        "weights": str(setup.weights),
        "data": setup.info.name,
        "images": int(stats.blocks[0].count.sum()),
        "blocks": [
            {k: b[k] for k in ("name", "depth", "channels", "specificity", "mean_gate", "gate_std")}
            for b in gates["blocks"]
        ],
        "saturation": saturation,
        "output_dir": str(out),
        "stn_picture": str(stn_picture) if stn_picture else None,
    }


def analysis_table(report: dict[str, Any]) -> Table:
    """Per block: channels, class specificity, mean and spread of the gate, saturation."""
    table = Table(
        title=f"Gates of {report['model']} on {report['data']} ({report['images']:,} images)"
    )
    for column in ("block", "C", "class specificity", "mean gate", "gate std", "saturated"):
        table.add_column(column, justify="left" if column == "block" else "right")
    saturated = {b["name"]: b["saturated"] for b in report["saturation"]["blocks"]}
    for b in report["blocks"]:
        table.add_row(
            b["name"], str(b["channels"]), f"{b['specificity']:.3f}", f"{b['mean_gate']:.3f}",
            f"{b['gate_std']:.3f}", "yes" if saturated[b["name"]] else "",
        )  # fmt: skip
    return table


def saturation_summary(report: dict[str, Any]) -> str:
    """One line: which blocks were frozen to their mean gate, and what it cost in accuracy."""
    sat = report["saturation"]
    if not sat["replaced"]:
        return (
            f"no saturated block (gate std < {sat['threshold']}); top-1 {sat['top1_before']:.2f}%"
        )
    return (
        f"froze {len(sat['replaced'])} saturated block(s) to their mean gate: top-1 "
        f"{sat['top1_before']:.2f}% -> {sat['top1_after']:.2f}%, "
        f"{sat['params_saved']:,} of {sat['params_total']:,} params saved"
    )
