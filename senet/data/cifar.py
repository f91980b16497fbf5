"""CIFAR-10 / CIFAR-100 in torchvision's layout under a root, held in memory as tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from senet.data._registry import register_dataset
from senet.data.base import DataError, DatasetInfo, check_flag, default_data_root
from senet.data.memory import InMemoryImages, InMemoryOptions

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


def load_cifar(
    name: str, split: str, *, root: str | Path | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str], Path]:
    """uint8 images (N, 3, 32, 32), labels and class names of the split, and the folder read."""
    root = Path(root) if root is not None else default_data_root()
    cls = _CLASSES[name]
    folder = root / cls.base_folder
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise DataError(
            f"{name} not found or corrupted under {folder} ({e}). Put torchvision's "
            f"'{cls.base_folder}' folder under data.root={str(root)!r}, or set "
            "data.download=true to let torchvision download it (needs internet)."
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # NHWC uint8 -> NCHW
    return images, torch.tensor(ds.targets), list(ds.classes), folder


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
    images, targets, classes, _ = load_cifar(name, split, root=root, download=download)
    stats_mean, stats_std = STATS[name]
    return InMemoryImages(
        images,
        targets,
        mean=mean or stats_mean,
        std=std or stats_std,
        augment=augment,
        pad=4,
        classes=classes,
    )


@register_dataset("cifar10")
@dataclass(frozen=True, kw_only=True)
class CIFAR10Options(InMemoryOptions):
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images, 50,000 to train and 10,000 to validate,
    from torchvision's pickled batches under ``root`` (``download``: fetch them if missing).
    Training augmentation: flip, 4-pixel zero padding and a random 32 crop (the paper's)."""

    name: ClassVar[str] = "cifar10"
    root: str | Path | None = None
    download: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag("download", self.download)

    def build(self, split: str) -> tuple[InMemoryImages, DatasetInfo]:
        images, targets, classes, folder = load_cifar(
            self.name, split, root=self.root, download=self.download
        )
        source = f"{self.name} {split}: torchvision's batches in {folder}"
        info = replace(cifar_info(self.name), classes=classes, source=source)
        return self.make(images, targets, info, pad=4)


@register_dataset("cifar100")
@dataclass(frozen=True, kw_only=True)
class CIFAR100Options(CIFAR10Options):
    """CIFAR-100: as CIFAR-10, with 100 fine classes."""

    name: ClassVar[str] = "cifar100"
