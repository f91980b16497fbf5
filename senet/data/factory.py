"""One entry point from a dataset name to its train/val datasets and their DatasetInfo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from senet.data.base import DataError, DatasetInfo
from senet.data.cifar import cifar_dataset, cifar_info
from senet.data.distort import DISTORTIONS, rts_distort
from senet.data.fashion_mnist import fashion_mnist_dataset, fashion_mnist_info
from senet.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD, image_folder_dataset
from senet.data.memory import InMemoryImages
from senet.data.synthetic import synthetic_dataset
from senet.data.transforms import (
    check_cutout,
    imagenet_eval_transform,
    imagenet_train_transform,
)

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagefolder", "synthetic")


def create_dataset(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    size: int | None = None,
    augment: bool = False,
    cutout: int = 0,
    image_size: int | None = None,
    eval_resize: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    interpolation: str = "bilinear",
    synthetic_size: int = 512,
    num_classes: int = 10,
    channels: int = 3,
    seed: int = 0,
    distort: str | None = None,
    distort_canvas: int | None = None,
) -> tuple[Dataset, DatasetInfo]:
    """The ``split`` ("train" or "val") of dataset ``name``, first ``size`` images, and its info.

    ``augment`` applies the paper's training augmentation for the dataset: CIFAR-style flip +
    pad + crop for the small in-memory datasets; RandomResizedCrop + flip for image folders.
    Evaluation of image folders resizes to ``eval_resize`` (default size/0.875) and centre-crops.
    ``mean``/``std`` default to the dataset's statistics. ``distort="rts"`` rotates, scales and
    translates every image once onto a ``distort_canvas``-sized canvas (senet.data.distort).
    ``cutout`` > 0 adds Cutout of that side to the in-memory datasets' augmentation.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if distort not in (None, *DISTORTIONS):
        raise DataError(
            f"unknown data.distort {distort!r}; expected one of {', '.join(DISTORTIONS)} or null"
        )
    distort = None if distort == "none" else distort
    if distort and name == "imagefolder":
        raise DataError(
            "data.distort=rts works on the in-memory datasets (fashion_mnist, cifar10, cifar100, "
            "synthetic), not on imagefolder"
        )
    if check_cutout(cutout) and (name == "imagefolder" or not augment):
        raise ValueError(
            f"cutout={cutout} needs augment=True and an in-memory dataset (CIFAR, Fashion-MNIST, "
            f"synthetic); got {name!r} with augment={augment}. Set data.cutout=0 or "
            "data.augment=true."
        )
    if name == "imagefolder":
        size_px = image_size or 224
        mean_, std_ = tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD)
        if split == "train":
            tf = imagenet_train_transform(size_px, mean_, std_, augment=augment)
        else:
            tf = imagenet_eval_transform(
                size_px, mean_, std_, resize=eval_resize, interpolation=interpolation
            )
        folder = image_folder_dataset(root, split, tf)
        info = DatasetInfo(
            "imagefolder", len(folder.classes), 3, size_px, mean_, std_, list(folder.classes)
        )
        return _first(folder, size), info

    if name == "synthetic":
        ds = synthetic_dataset(
            split,
            size=size or synthetic_size,
            num_classes=num_classes,
            channels=channels,
            image_size=image_size or 32,
            seed=seed,
            augment=augment,
        )
        info = DatasetInfo(
            "synthetic",
            num_classes,
            channels,
            image_size or 32,
            (0.5,) * channels,
            (0.25,) * channels,
            ds.classes,
        )
    elif name == "fashion_mnist":
        info = fashion_mnist_info()
        ds = fashion_mnist_dataset(split, root=root, download=download, augment=augment)
    else:
        info = cifar_info(name)
        ds = cifar_dataset(name, split, root=root, download=download, augment=augment)
    ds = ds.subset(size)
    if mean is not None or std is not None:
        mean_, std_ = tuple(mean or info.mean), tuple(std or info.std)
        ds = InMemoryImages(
            ds.images,
            ds.targets,
            mean=mean_,
            std=std_,
            augment=ds.augment,
            pad=ds.pad,
            flip=ds.flip,
            classes=ds.classes,
        )
        info = replace(info, mean=mean_, std=std_)
    if image_size is not None and image_size != ds.images.shape[-1]:
        ds.images = (
            F.interpolate(
                ds.images.float(), size=(image_size, image_size), mode="bilinear", antialias=True
            )
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
        )
        info = replace(info, image_size=image_size)
    if distort:
        # One fixed draw per split, the same for every training seed (fair comparisons).
        ds.images = rts_distort(ds.images, canvas=distort_canvas, seed=int(split == "val"))
        info = replace(info, image_size=ds.images.shape[-1])
    info = replace(info, classes=ds.classes or info.classes)
    ds.cutout = check_cutout(cutout)
    return ds, info


def _first(ds: Dataset, size: int | None) -> Dataset:
    n = len(ds)  # type: ignore[arg-type]
    if size is None or size >= n:
        return ds
    # ImageFolder sorts by class: the first N would hold few classes. A fixed stride keeps all.
    step = n / size
    return Subset(ds, [int(i * step) for i in range(size)])
