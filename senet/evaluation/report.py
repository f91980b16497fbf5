"""``evaluate_weights`` (top-1/top-5, per-class accuracy, confusion matrix) and ``compare_runs``."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from senet.config import ConfigError
from senet.data import create_dataset, create_loader
from senet.models.builder import build_model, is_foreign, load_initial_weights, load_run_state
from senet.models.weights import convert_state_dict, detect_layout, load_state_dict, read_weights
from senet.plots.confusion import plot_confusion
from senet.plots.curves import plot_overlay
from senet.train.distributed import resolve_device
from senet.train.epoch import evaluate
from senet.train.run_log import read_metrics
from senet.train.summary import RunSummary


def preprocessing_for(model_meta: dict[str, Any], model: torch.nn.Module | None) -> dict[str, Any]:
    """Mean, std, image size, crop and interpolation: from senet weights' metadata, else from the
    model's ``pretrained_cfg`` (timm / Cadene ports carry their own), else empty (data default)."""
    if model_meta:
        size = model_meta.get("input_size")
        return {
            "mean": model_meta.get("mean"),
            "std": model_meta.get("std"),
            "image_size": size[-1] if size else None,
        }
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if not isinstance(cfg, dict):
        cfg = vars(cfg)
    size = cfg.get("input_size")
    return {
        "mean": cfg.get("mean"),
        "std": cfg.get("std"),
        "image_size": size[-1] if size else None,
        "crop_pct": cfg.get("crop_pct"),
        "interpolation": cfg.get("interpolation"),
    }


@dataclass
class EvaluationSetup:
    """A model with its weights and the validation data prepared the way it was trained."""

    model: torch.nn.Module
    dataset: Any
    info: Any  # senet.data.DatasetInfo
    preprocessing: dict[str, Any]
    weights: Path


def prepare_evaluation(
    model_name: str,
    weights: str | Path,
    data: str,
    *,
    root: str | None = None,
    size: int | None = None,
    download: bool = False,
) -> EvaluationSetup:
    """Build ``model_name`` with ``weights`` and the val split of ``data``, preprocessed to fit.

    senet weight files carry the model's keyword arguments and the preprocessing they were
    trained with; other files (timm, Cadene, torchvision layouts) go through
    ``senet.load_weights`` and use the model's ``pretrained_cfg`` preprocessing.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ConfigError(f"weights file {weights} does not exist")
    state, meta = read_weights(weights) if weights.suffix == ".safetensors" else ({}, {})
    if meta and meta.get("model") != model_name:
        raise ConfigError(
            f"{weights} holds weights of {meta.get('model')!r}, not {model_name!r}; "
            f"name the model {meta.get('model')!r} instead"
        )
    # A first model (default head) only to read its pretrained_cfg before the data is built.
    probe = None if meta else build_model(model_name)
    prep = preprocessing_for(meta, probe)
    image_size = prep.get("image_size")
    eval_resize = None
    if data == "imagefolder" and image_size and prep.get("crop_pct"):
        eval_resize = round(image_size / prep["crop_pct"])
    same_data = meta.get("data_args", {}) if meta.get("data") == data else {}
    dataset, info = create_dataset(
        data,
        "val",
        root=root,
        download=download,
        size=size,
        **{"image_size": image_size, "eval_resize": eval_resize, **same_data},
        mean=prep.get("mean"),
        std=prep.get("std"),
        interpolation=prep.get("interpolation") or "bilinear",
    )
    if meta:
        kwargs = dict(meta["model_kwargs"])
        if kwargs.get("num_classes") != info.num_classes:
            raise ConfigError(
                f"{weights} has a {kwargs.get('num_classes')}-class head but {info.name} has "
                f"{info.num_classes} classes"
            )
        model = build_model(model_name, **kwargs)
        load_run_state(model, state, str(weights))
    else:
        model = _foreign_model(model_name, weights, info.num_classes, info.in_chans)
    return EvaluationSetup(model, dataset, info, prep, weights)


def evaluate_weights(
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
    output_dir: str | Path | None = None,
    amp: str = "none",
) -> dict[str, Any]:
    """Evaluate ``weights`` of ``model_name`` on the val split of ``data``; write the report.

    See :func:`prepare_evaluation` for how weights and preprocessing are matched. Writes
    ``eval.json``, ``per_class.csv`` and ``confusion.png`` into ``output_dir`` (default: a
    folder ``eval-<data>`` beside the weights).
    """
    setup = prepare_evaluation(model_name, weights, data, root=root, size=size, download=download)
    model, dataset, info, prep, weights = (
        setup.model, setup.dataset, setup.info, setup.preprocessing, setup.weights
    )  # fmt: skip
    dev = resolve_device(device)
    model.to(dev)
    loader = create_loader(dataset, batch_size=batch_size, train=False, device=dev, workers=workers)
    result = evaluate(model, loader, device=dev, amp=amp, num_classes=info.num_classes)

    out = Path(output_dir) if output_dir else weights.parent / f"eval-{info.name}"
    out.mkdir(parents=True, exist_ok=True)
    classes = info.classes or [str(i) for i in range(info.num_classes)]
    counts = result["confusion"].sum(dim=1).tolist()
    with open(out / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "name", "images", "top1"])
        for i, (name, n, acc) in enumerate(zip(classes, counts, result["per_class"], strict=True)):
            writer.writerow([i, name, n, f"{acc:.4f}"])
    plot_confusion(
        result["confusion"].tolist(),
        classes,
        out / "confusion.png",
        title=f"{model_name} on {info.name} ({result['images']:,} images): "
        f"top-1 {result['top1']:.2f}%",
    )
    report = {
        "model": model_name,
        "weights": str(weights),
        "data": info.name,
        "images": result["images"],
        "loss": result["loss"],
        "top1": result["top1"],
        "top5": result["top5"],
        "per_class": dict(zip(classes, result["per_class"], strict=True)),
        "preprocessing": {k: v for k, v in prep.items() if v is not None},
        "output_dir": str(out),
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    report["confusion"] = result["confusion"]
    return report


def _foreign_model(name: str, weights: Path, num_classes: int, in_chans: int) -> torch.nn.Module:
    """``name`` with a timm / Cadene / torchvision checkpoint whose head fits the data.

    ``create_model(pretrained=...)`` picks the architecture layout the checkpoint needs; it
    would keep a fresh classifier when the class counts differ, so that is refused first.
    """
    if is_foreign(name):  # a torchvision/timm model and its own state dict, loaded as is
        model = build_model(name, num_classes=num_classes, in_chans=in_chans)
        load_initial_weights(model, str(weights), foreign=True)
        return model
    try:
        state = load_state_dict(str(weights))
        head = convert_state_dict(state, detect_layout(state)).get("fc.weight")
    except (ValueError, RuntimeError, KeyError) as e:
        raise ConfigError(f"cannot read {weights} as {name} weights: {e}") from e
    if head is None or head.shape[0] != num_classes:
        found = "no fc.weight" if head is None else f"a {head.shape[0]}-class head"
        raise ConfigError(
            f"{weights} has {found} but the data has {num_classes} classes; evaluate on the "
            "data the weights were trained for (ImageNet weights: an imagefolder with the 1000 "
            "ImageNet class folders)"
        )
    return build_model(name, pretrained=str(weights), num_classes=num_classes, in_chans=in_chans)


def per_class_table(report: dict[str, Any]) -> Table:
    """Rich table of per-class accuracy of an ``evaluate_weights`` report."""
    table = Table(
        title=f"{report['model']} on {report['data']}: top-1 {report['top1']:.2f}%, "
        f"top-5 {report['top5']:.2f}% ({report['images']:,} images)"
    )
    table.add_column("class")
    table.add_column("top-1 %", justify="right")
    for name, acc in report["per_class"].items():
        table.add_row(name, f"{acc:.2f}")
    return table


_COMPARED = (
    "model", "data", "final_top1", "best_top1", "best_epoch", "params", "macs", "epochs",
    "val_images", "train_seconds", "wall_seconds", "train_img_s",
)  # fmt: skip


def compare_runs(
    run_dirs: list[str | Path], *, plot_path: str | Path | None = None
) -> tuple[list[dict[str, Any]], Table]:
    """One row per run (top-1, params, MACs, time) and an overlay plot of their curves."""
    rows, curves = [], {}
    for folder in map(Path, run_dirs):
        if not (folder / "summary.json").is_file():
            raise ConfigError(f"{folder} is not a finished senet run (no summary.json)")
        summary = RunSummary.read(folder)
        label = folder.name
        curves[label] = read_metrics(folder)
        rows.append(
            {
                "run": label,
                **{key: getattr(summary, key) for key in _COMPARED},
                # The median epoch is robust to an epoch slowed by other work on the machine.
                "median_img_s": _median(
                    [float(r["train_img_s"]) for r in curves[label] if r.get("train_img_s")]
                ),
            }
        )
    if plot_path is not None:
        plot_overlay(curves, plot_path)
    return rows, comparison_table(rows)


def comparison_table(rows: list[dict[str, Any]], title: str = "Runs compared") -> Table:
    table = Table(title=title)
    for column in (
        "run",
        "model",
        "data",
        "test top-1 %",
        "best top-1 % (epoch)",
        "params",
        "MACs",
        "epochs",
        "wall time",
        "train img/s",
    ):
        table.add_column(column, justify="left" if column in ("run", "model", "data") else "right")
    for r in rows:
        table.add_row(
            r["run"],
            r["model"],
            r["data"],
            _pct(r["final_top1"]),
            f"{_pct(r['best_top1'])} ({r['best_epoch']})",
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:,.2f} M",
            str(r["epochs"]),
            f"{r['wall_seconds']:.0f} s",
            f"{r['median_img_s']:,.0f}",
        )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None
