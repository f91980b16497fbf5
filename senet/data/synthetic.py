"""Seeded synthetic images for tests: each class is a fixed random pattern plus noise."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from senet.data._registry import register_dataset
from senet.data.base import DataOptionError, DatasetInfo, check_count
from senet.data.memory import InMemoryImages, InMemoryOptions


def synthetic_images(
    split: str,
    *,
    size: int,
    num_classes: int = 10,
    channels: int = 3,
    image_size: int = 32,
    seed: int = 0,
    noise: float = 48.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` uint8 images of ``num_classes`` learnable classes and their labels, the same
    for the same seed.

    The class patterns depend on ``seed`` only, so train and val share them; the noise and the
    label order differ per split. A small CNN learns it in a few steps.
    """
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randint(0, 256, (num_classes, channels, image_size, image_size), generator=gen)
    gen.manual_seed(seed * 1000 + (1 if split == "train" else 2))
    labels = torch.arange(size) % num_classes
    labels = labels[torch.randperm(size, generator=gen)]
    noise_t = torch.randn(size, channels, image_size, image_size, generator=gen) * noise
    images = (patterns[labels].float() + noise_t).clamp_(0, 255).to(torch.uint8)
    return images, labels


def synthetic_dataset(
    split: str,
    *,
    size: int,
    num_classes: int = 10,
    channels: int = 3,
    image_size: int = 32,
    seed: int = 0,
    noise: float = 48.0,
    augment: bool = False,
) -> InMemoryImages:
    """The images of ``synthetic_images`` as an in-memory dataset (flip + 2-pixel shift)."""
    images, labels = synthetic_images(
        split,
        size=size,
        num_classes=num_classes,
        channels=channels,
        image_size=image_size,
        seed=seed,
        noise=noise,
    )
    return InMemoryImages(
        images,
        labels,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        augment=augment,
        pad=2,
        classes=_class_names(num_classes),
    )


def _class_names(num_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(num_classes)]


@register_dataset("synthetic")
@dataclass(frozen=True, kw_only=True)
class SyntheticOptions(InMemoryOptions):
    """Seeded synthetic images (``synthetic_images``): ``size`` images, or ``synthetic_size``
    when ``size`` is None, of ``num_classes`` classes, ``channels`` channels, ``image_size``
    (default 32) pixels a side, drawn from ``seed``."""

    synthetic_size: int = 512
    num_classes: int = 10
    channels: int = 3
    seed: int = 0
    noise: float = 48.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count("synthetic_size", self.synthetic_size, optional=False)
        check_count("num_classes", self.num_classes, optional=False)
        check_count("channels", self.channels, optional=False)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise DataOptionError("seed", self.seed, "must be an integer")
        if (
            isinstance(self.noise, bool)
            or not isinstance(self.noise, int | float)
            or self.noise < 0
        ):
            raise DataOptionError("noise", self.noise, "must be a number >= 0")

    def build(self, split: str) -> tuple[InMemoryImages, DatasetInfo]:
        size, side = self.size or self.synthetic_size, self.image_size or 32
        images, labels = synthetic_images(
            split,
            size=size,
            num_classes=self.num_classes,
            channels=self.channels,
            image_size=side,
            seed=self.seed,
            noise=self.noise,
        )
        info = DatasetInfo(
            "synthetic",
            self.num_classes,
            self.channels,
            side,
            (0.5,) * self.channels,
            (0.25,) * self.channels,
            _class_names(self.num_classes),
            source=f"synthetic {split}: {size} images drawn from seed {self.seed}",
        )
        return self.make(images, labels, info, pad=2)  # generated at the size asked for
