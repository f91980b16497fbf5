"""CIFAR-10 / CIFAR-100 in torchvision's layout under a root, held in memory as tensors."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from senet.data.base import DataError, DatasetInfo, default_data_root
from senet.data.memory import InMemoryImages

# Per-channel statistics of the training images (0..1 scale).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_CLASSES = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def cifar_info(name: str) -> DatasetInfo:
    mean, std = STATS[name]
    num_classes = 10 if name == "cifar10" else 100
    return DatasetInfo(name, num_classes, 3, 32, mean, std)


def cifar_dataset(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    augment: bool = False,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> InMemoryImages:
    """The paper's CIFAR pipeline: flip, 4-pixel zero padding + random 32 crop, normalisation."""
    root = Path(root) if root is not None else default_data_root()
    cls = _CLASSES[name]
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        folder = root / cls.base_folder
        raise DataError(
            f"{name} not found or corrupted under {folder} ({e}). Put torchvision's "
            f"'{cls.base_folder}' folder under data.root={str(root)!r}, or set "
            "data.download=true to let torchvision download it (needs internet)."
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # NHWC uint8 -> NCHW
    stats_mean, stats_std = STATS[name]
    return InMemoryImages(
        images,
        torch.tensor(ds.targets),
        mean=mean or stats_mean,
        std=std or stats_std,
        augment=augment,
        pad=4,
        classes=ds.classes,
    )
