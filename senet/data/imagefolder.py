"""ImageNet-style folders: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image
from torchvision.datasets import ImageFolder

from senet.data.base import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB; a corrupt or unreadable file raises a DataError naming its path."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"cannot read image {path}: {e}. Remove or replace the file (a truncated download "
            "or a non-image file in the class folder are the usual causes)."
        ) from None


def image_folder_dataset(
    root: str | Path | None, split: str, transform: Callable | None = None
) -> ImageFolder:
    """``root/<split>`` as a torchvision ImageFolder whose loader reports corrupt files."""
    if root is None:
        raise DataError("data.name=imagefolder needs data.root=PATH (holding train/ and val/)")
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist; data.root must hold train/ and val/ "
            "folders with one sub-folder per class (ImageNet layout)"
        )
    try:
        return ImageFolder(str(folder), transform=transform, loader=load_rgb)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{folder}: {e}") from None
