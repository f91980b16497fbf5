"""What to evaluate, on which data, and how to load it: ``EvalSource`` and ``prepare_evaluation``.

``senet evaluate`` and ``senet analyze`` both start here: a model name and its weights file,
the validation split of a dataset preprocessed the way the weights were trained, the device and
the loader. Each then does its own work on what :meth:`EvalSource.prepare` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from senet.config import ConfigError
from senet.data import create_dataset, create_loader, dataset_options
from senet.models import classifier_prefix, create_model
from senet.models.foreign import split_name
from senet.models.weights import read_weights_metadata
from senet.train.distributed import resolve_device


@dataclass(frozen=True)
class EvalSource:
    """A model's weights and the data to run them on: the arguments every evaluation shares.

    ``size`` keeps the first N validation images; ``workers=None`` lets the loader choose;
    ``download`` lets ``create_dataset`` fetch data that is not on disk yet.
    """

    model_name: str
    weights: str | Path
    data: str
    root: str | None = None
    size: int | None = None
    batch_size: int = 256
    device: str = "auto"
    workers: int | None = None
    download: bool = False

    def prepare(self) -> PreparedEvaluation:
        """The model with its weights on the device, and a loader over the validation split."""
        setup = prepare_evaluation(
            self.model_name,
            self.weights,
            self.data,
            root=self.root,
            size=self.size,
            download=self.download,
        )
        device = resolve_device(self.device)
        setup.model.to(device)
        loader = create_loader(
            setup.dataset,
            batch_size=self.batch_size,
            train=False,
            device=device,
            workers=self.workers,
        )
        return PreparedEvaluation(**vars(setup), device=device, loader=loader)


def run_folder_source(run_dir: str | Path, weights: str | Path | None = None) -> EvalSource:
    """Model name, weights file (``weights``, else best, else last), dataset and data root of a
    `senet train` run folder; the other fields keep their defaults (``dataclasses.replace``
    sets them)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a senet run folder (no config.yaml); pass a run folder written by "
            "`senet train`, or MODEL --weights FILE --data NAME"
        )
    config = yaml.safe_load(config_path.read_text())
    if weights is None:
        found = [run_dir / n for n in ("best.safetensors", "last.safetensors")]
        weights = next((w for w in found if w.is_file()), None)
        if weights is None:
            raise ConfigError(f"{run_dir} holds no best.safetensors or last.safetensors")
    return EvalSource(
        model_name=config["model"]["name"],
        weights=weights,
        data=config["data"]["name"],
        root=config["data"].get("root"),
    )


def resolve_source(
    source: str, weights: str | Path | None, data: str | None, root: str | None = None
) -> EvalSource:
    """What a command's SOURCE names: a run folder (its model, data and best weights, or
    ``weights``) or a model name with ``weights`` and ``data``; ``data``/``root`` override a run
    folder's."""
    if (Path(source) / "config.yaml").is_file() or weights is None:
        found = run_folder_source(source, weights)
    elif data is None:
        raise ConfigError(
            f"--data is needed with --weights for model {source!r} (a run folder knows its data)"
        )
    else:
        found = EvalSource(source, weights, data)
    return replace(found, data=data or found.data, root=root or found.root)


@dataclass
class EvaluationSetup:
    """A model with its weights and the validation data prepared the way it was trained."""

    model: torch.nn.Module
    dataset: Any
    info: Any  # senet.data.DatasetInfo
    preprocessing: dict[str, Any]
    weights: Path

    @property
    def class_names(self) -> list[str]:
        """The dataset's class names, or the class indices as text where it has none."""
        return self.info.classes or [str(i) for i in range(self.info.num_classes)]


@dataclass
class PreparedEvaluation(EvaluationSetup):
    """An ``EvaluationSetup`` with the model moved to ``device`` and a loader over its data."""

    device: torch.device
    loader: Any  # torch.utils.data.DataLoader


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
    meta = read_weights_metadata(weights) if weights.suffix == ".safetensors" else {}
    if meta and meta.get("model") != model_name:
        raise ConfigError(
            f"{weights} holds weights of {meta.get('model')!r}, not {model_name!r}; "
            f"name the model {meta.get('model')!r} instead"
        )
    # A run's file or a senet model's checkpoint knows its classifier; a torchvision/timm
    # state dict is loaded once the data says how many classes it has.
    raw_foreign = not meta and split_name(model_name)[0] is not None
    model = (
        None if raw_foreign else create_model(model_name, pretrained=weights, pretrained_head=True)
    )
    prep = preprocessing_for(meta, model if model is not None else create_model(model_name))
    image_size = prep.get("image_size")
    eval_resize = None
    if data == "imagefolder" and image_size and prep.get("crop_pct"):
        eval_resize = round(image_size / prep["crop_pct"])
    same_data = meta.get("data_args", {}) if meta.get("data") == data else {}
    options = _taken_by(
        data,
        root=root,
        download=download,
        size=size,
        **{"image_size": image_size, "eval_resize": eval_resize, **same_data},
        mean=prep.get("mean"),
        std=prep.get("std"),
        interpolation=prep.get("interpolation") or "bilinear",
    )
    dataset, info = create_dataset(data, "val", **options)
    if model is None:
        classes = {"num_classes": info.num_classes, "in_chans": info.in_chans}
        model = create_model(model_name, pretrained=weights, pretrained_head=True, **classes)
    head = _head_size(model)
    if head is not None and head != info.num_classes:
        raise ConfigError(
            f"{weights} has a {head}-class head but the data has {info.num_classes} classes; "
            "evaluate on the data the weights were trained for (ImageNet weights: an "
            "imagefolder with the 1000 ImageNet class folders)"
        )
    return EvaluationSetup(model, dataset, info, prep, weights)


def _head_size(model: torch.nn.Module) -> int | None:
    """The number of classes the model's classifier outputs (None if it has no Linear head)."""
    prefix = classifier_prefix(model)
    head = model.get_submodule(prefix.rstrip(".")) if prefix else None
    return getattr(head, "out_features", None)


def _taken_by(data: str, **options: Any) -> dict[str, Any]:
    """The ``options`` dataset ``data`` takes: a weights file records every data key."""
    if options.get("distort") != "rts":  # the canvas is recorded even when nothing was distorted
        options.pop("distort_canvas", None)
    return {key: value for key, value in options.items() if key in dataset_options(data)}
