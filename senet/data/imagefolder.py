"""ImageNet-style folders: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision.datasets import ImageFolder

from senet.data._registry import register_dataset
from senet.data.base import (
    BadImageError,
    DataError,
    DataOptionError,
    DatasetInfo,
    DatasetOptions,
    check_count,
    check_flag,
    check_stats,
)
from senet.data.transforms import (
    INTERPOLATIONS,
    imagenet_eval_transform,
    imagenet_train_transform,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB; a corrupt or unreadable file raises a BadImageError naming it."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(path, str(e)) from None


def image_folder_dataset(
    root: str | Path | None, split: str, transform: Callable | None = None
) -> ImageFolder:
    """``root/<split>`` as a torchvision ImageFolder whose loader reports corrupt files."""
    if root is None:
        raise DataOptionError("root", None, "imagefolder needs root=PATH (holding train/, val/)")
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist; the root folder must hold train/ and val/ "
            "folders with one sub-folder per class (ImageNet layout)"
        )
    try:
        return ImageFolder(str(folder), transform=transform, loader=load_rgb)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{folder}: {e}") from None


@register_dataset("imagefolder")
@dataclass(frozen=True, kw_only=True)
class ImageFolderOptions(DatasetOptions):
    """Images in ``root/train/<class>/`` and ``root/val/<class>/``, read as they are needed.

    Training: RandomResizedCrop to ``image_size`` (default 224) + flip when ``augment``.
    Evaluation: resize the shorter side to ``eval_resize`` (default image_size / 0.875) with
    ``interpolation``, centre crop. ``size`` keeps ``size`` images spread over all classes;
    ``mean``/``std`` default to ImageNet's.
    """

    root: str | Path | None = None
    size: int | None = None
    augment: bool = False
    image_size: int | None = None
    eval_resize: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.root is None:
            raise DataOptionError(
                "root", None, "imagefolder needs root=PATH (holding train/, val/)"
            )
        check_count("size", self.size)
        check_flag("augment", self.augment)
        check_count("image_size", self.image_size)
        check_count("eval_resize", self.eval_resize)
        for option in ("mean", "std"):
            check_stats(option, getattr(self, option))
            if getattr(self, option) is not None and len(getattr(self, option)) not in (1, 3):
                raise DataOptionError(option, getattr(self, option), "needs 1 or 3 values")
        if self.interpolation not in INTERPOLATIONS:
            raise DataOptionError(
                "interpolation", self.interpolation, f"expected one of {', '.join(INTERPOLATIONS)}"
            )

    def build(self, split: str) -> tuple[Dataset, DatasetInfo]:
        side = self.image_size or 224
        mean, std = tuple(self.mean or IMAGENET_MEAN), tuple(self.std or IMAGENET_STD)
        if split == "train":
            transform = imagenet_train_transform(side, mean, std, augment=self.augment)
        else:
            transform = imagenet_eval_transform(
                side, mean, std, resize=self.eval_resize, interpolation=self.interpolation
            )
        folder = image_folder_dataset(self.root, split, transform)
        source = (
            f"imagefolder {split}: {len(folder)} images in {len(folder.classes)} class folders "
            f"of {folder.root}"
        )
        classes = list(folder.classes)
        info = DatasetInfo("imagefolder", len(classes), 3, side, mean, std, classes, source)
        return _spread(folder, self.size), info


def _spread(ds: ImageFolder, size: int | None) -> Dataset:
    n = len(ds)
    if size is None or size >= n:
        return ds
    # ImageFolder sorts by class: the first N would hold few classes. A fixed stride keeps all.
    step = n / size
    return Subset(ds, [int(i * step) for i in range(size)])
