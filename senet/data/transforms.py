"""PIL-image transforms of the paper's ImageNet recipe (torchvision.transforms.v2), and Cutout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms.v2 as T

from senet.data.base import DataOptionError

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}
INTERPOLATIONS = tuple(_INTERPOLATION)


def imagenet_train_transform(
    size: int, mean: Sequence[float], std: Sequence[float], *, augment: bool = True
) -> T.Compose:
    """RandomResizedCrop(size) + flip + normalise (paper Sec. 5); eval pipeline if no augment."""
    if not augment:
        return imagenet_eval_transform(size, mean, std)
    return T.Compose(
        [
            T.RandomResizedCrop(size, antialias=True),
            T.RandomHorizontalFlip(),
            *_to_tensor(mean, std),
        ]
    )


def imagenet_eval_transform(
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    resize: int | None = None,
    crop_pct: float | None = None,
    interpolation: str = "bilinear",
) -> T.Compose:
    """Resize the shorter side to ``resize`` (default size / 0.875: 256 for 224), centre crop."""
    if resize is None:
        resize = round(size / (crop_pct or 0.875))
    if interpolation not in _INTERPOLATION:
        raise DataOptionError(
            "interpolation", interpolation, f"expected one of {', '.join(INTERPOLATIONS)}"
        )
    return T.Compose(
        [
            T.Resize(resize, interpolation=_INTERPOLATION[interpolation], antialias=True),
            T.CenterCrop(size),
            *_to_tensor(mean, std),
        ]
    )


def _to_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]


def check_cutout(size: object) -> int:
    """A Cutout square side: an int >= 0 (0: no Cutout)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise DataOptionError(
            "cutout", size, "cutout must be a square side in pixels >= 0 (0: off)"
        )
    return size


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) of one normalised (C, H, W) image, in place: zero a
    ``size`` x ``size`` square (0 = the dataset mean) centred on a uniform random pixel, clipped
    at the border, as the SE paper's Shake-Shake CIFAR-10 rows (Table 4) use with ``size=16``."""
    h, w = x.shape[-2:]
    cy, cx = torch.randint(0, h, ()).item(), torch.randint(0, w, ()).item()
    top, left = max(cy - size // 2, 0), max(cx - size // 2, 0)
    x[..., top : min(cy + size - size // 2, h), left : min(cx + size - size // 2, w)] = 0
    return x
