"""What a training job builds before its first step, each checked so a mistake costs seconds:
the run folder, the data and loaders, the model fitted to the data (with its cost), the
weights' metadata, and a checkpoint's state restored into the parts."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from senet.config import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    create_model_from_config,
)
from senet.data import (
    DataOptionError,
    DatasetInfo,
    create_dataset,
    create_loader,
    dataset_options,
)
from senet.profiling import profile
from senet.profiling.timing import eval_mode
from senet.train.checkpoint import restore_training_state
from senet.train.distributed import World


def prepare_run_dir(output_dir: str | None, config: Config) -> Path:
    """Create the run folder (default ``runs/<model>-<data>-<time>``) and prove it is writable."""
    if output_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = f"runs/{config.model.name}-{config.data.name}-{stamp}"
    folder = Path(output_dir)
    probe = folder / ".senet-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"output folder {folder} is not writable ({e.strerror}); choose another with "
            "output_dir=PATH"
        ) from None
    return folder


def build_data(
    config: Config, world: World
) -> tuple[Dataset, Dataset, DatasetInfo, DataLoader, DataLoader]:
    """Train and val datasets of ``config.data`` and their loaders, sharded over ``world``.
    The info's ``source`` says where both splits came from (the run log prints it)."""
    d, device = config.data, world.device
    with world.main_first():  # rank 0 unpacks or downloads; the others then read
        train_set, info = _create_split(config, "train")
        val_set, val_info = _create_split(config, "val")
    if val_info.source != info.source:
        info = replace(info, source=f"{info.source}; {val_info.source}")
    shard = dict(num_replicas=world.world_size, rank=world.rank, on_bad_image=d.on_bad_image)
    train_loader = create_loader(
        train_set,
        batch_size=d.batch_size,
        train=True,
        device=device,
        workers=d.workers,
        seed=config.train.seed,
        **shard,
    )
    val_loader = create_loader(
        val_set,
        batch_size=d.eval_batch_size or 2 * d.batch_size,
        train=False,
        device=device,
        workers=d.workers,
        **shard,
    )
    return train_set, val_set, info, train_loader, val_loader


def _create_split(config: Config, split: str) -> tuple[Dataset, DatasetInfo]:
    """``create_dataset`` of ``split`` with the options ``config.data`` sets for it; an option the
    data layer refuses comes back as a ConfigError naming the config key."""
    options = _split_options(config, split)
    try:
        return create_dataset(config.data.name, split, **{k: v for k, (_, v) in options.items()})
    except DataOptionError as e:
        key = options[e.option][0] if e.option in options else f"data.{e.option}"
        raise ConfigError(f"{key}={e.value!r}: {e.reason}") from None


# Where data lives, and the synthetic data's own keys: a dataset that takes none of them ignores
# them (a recipe or grid may share them across datasets). Any other data key a dataset does not
# take, set away from its default, goes to the dataset, which refuses it by name.
_IGNORED_WHEN_UNUSED = (
    "data.root",
    "data.download",
    "data.num_classes",
    "data.channels",
    "data.synthetic_train",
    "data.synthetic_val",
)


def _split_options(config: Config, split: str) -> dict[str, tuple[str, Any]]:
    """Dataset option -> (config key, value) for ``split``."""
    d, train = config.data, split == "train"
    options = {
        "root": ("data.root", d.root),
        "download": ("data.download", d.download),
        "size": ("data.train_size", d.train_size) if train else ("data.val_size", d.val_size),
        "synthetic_size": (
            ("data.synthetic_train", d.synthetic_train)
            if train
            else ("data.synthetic_val", d.synthetic_val)
        ),
        "image_size": ("data.image_size", d.image_size),
        "mean": ("data.mean", d.mean),
        "std": ("data.std", d.std),
        "num_classes": ("data.num_classes", d.num_classes),
        "channels": ("data.channels", d.channels),
        "seed": ("train.seed", config.train.seed),
        "distort": ("data.distort", None if d.distort == "none" else d.distort),
    }
    if d.distort == "rts":
        options["distort_canvas"] = ("data.distort_canvas", d.distort_canvas)
    if train:
        options["augment"] = ("data.augment", d.augment)
        options["cutout"] = ("data.cutout", d.cutout)
    else:
        options["eval_resize"] = ("data.eval_resize", d.eval_resize)
    taken, default = dataset_options(d.name), DataConfig()
    return {
        option: (key, value)
        for option, (key, value) in options.items()
        if option in taken
        or (
            key.startswith("data.")
            and key not in _IGNORED_WHEN_UNUSED
            and value != getattr(default, key.removeprefix("data."))
        )
    }


def model_for_data(
    m: ModelConfig, info: DatasetInfo, val_set: Dataset
) -> tuple[nn.Module, dict[str, Any], tuple[int, int, int], dict[str, Any]]:
    """The model of ``m`` fitted to the data: checked on two images, with its cost counted.

    Returns the model, the keyword arguments it was built with, one image's (C, H, W) and
    ``model_cost`` at that size.
    """
    if m.num_classes is not None and m.num_classes != info.num_classes:
        raise ConfigError(
            f"model.num_classes={m.num_classes} but {info.name} has {info.num_classes} classes; "
            f"set model.num_classes={info.num_classes} or null"
        )
    if m.in_chans is not None and m.in_chans != info.in_chans:
        raise ConfigError(
            f"model.in_chans={m.in_chans} but {info.name} images have {info.in_chans} channels; "
            f"set model.in_chans={info.in_chans} or null"
        )
    model, model_kwargs = create_model_from_config(
        m, num_classes=info.num_classes, in_chans=info.in_chans
    )
    sample = torch.stack([val_set[i][0] for i in range(min(2, len(val_set)))])
    check_model_fits_data(model, sample, info, m.name)
    input_size = (info.in_chans, *sample.shape[-2:])
    cost = model_cost(model, input_size)
    return model, model_kwargs, input_size, cost


def check_model_fits_data(
    model: nn.Module, sample: torch.Tensor, info: DatasetInfo, model_name: str
) -> None:
    """One forward pass on real images; fail clearly if channels or class counts disagree."""
    try:
        with eval_mode(model), torch.no_grad():  # every submodule's own mode comes back
            out = model(sample)
    except (RuntimeError, ValueError) as e:  # ValueError: a model's own input check
        raise ConfigError(
            f"model {model_name} cannot take the {info.name} images of shape "
            f"{tuple(sample.shape[1:])} ({str(e).splitlines()[0]}); check model.in_chans "
            f"(data has {info.in_chans} channels) and data.image_size"
        ) from None
    if out.dim() != 2 or out.shape[1] != info.num_classes:
        raise ConfigError(
            f"model {model_name} outputs {tuple(out.shape[1:])} logits per image but {info.name} "
            f"has {info.num_classes} classes; set model.num_classes={info.num_classes} (or leave "
            "it null to follow the data)"
        )


def model_cost(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, Any]:
    """Params and multiply-adds at ``input_size`` in the paper's convention (senet.profile)."""
    report = profile(model, input_size=input_size)
    return {
        "params": int(report.params),
        "macs": int(report.macs),
        "macs_convention": "senet.profile",
    }


def weights_metadata(
    config: Config, info: DatasetInfo, model_kwargs: dict[str, Any], input_size: tuple[int, ...]
) -> dict[str, Any]:
    """What travels with saved weights: enough to rebuild the model and its preprocessing."""
    d = config.data
    return {
        "model": config.model.name,
        "model_kwargs": model_kwargs,
        "data": info.name,
        "classes": info.classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "input_size": list(input_size),
        # Enough to rebuild the same dataset for `senet evaluate` (synthetic data needs all).
        "data_args": {
            "num_classes": d.num_classes,
            "channels": d.channels,
            "seed": config.train.seed,
            "image_size": d.image_size,
            "eval_resize": d.eval_resize,
            "distort": d.distort,
            "distort_canvas": d.distort_canvas,
        },
    }


def restore_run(state: dict[str, Any], path: Path | None, **parts: Any) -> None:
    """Load a checkpoint's model, optimiser, scheduler, scaler and EMA states into ``parts``."""
    try:
        restore_training_state(state, **parts)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"cannot resume from {path}: its state does not fit this model and "
            f"optimiser ({str(e).splitlines()[0]})"
        ) from None
