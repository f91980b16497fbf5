"""PIL-image transforms of the paper's ImageNet recipe (torchvision.transforms.v2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms.v2 as T

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


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
        raise ValueError(f"interpolation {interpolation!r}; expected one of {list(_INTERPOLATION)}")
    return T.Compose(
        [
            T.Resize(resize, interpolation=_INTERPOLATION[interpolation], antialias=True),
            T.CenterCrop(size),
            *_to_tensor(mean, std),
        ]
    )


def _to_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
