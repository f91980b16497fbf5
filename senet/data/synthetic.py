"""Seeded synthetic images for tests: each class is a fixed random pattern plus noise."""

from __future__ import annotations

import torch

from senet.data.memory import InMemoryImages


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
    """``size`` uint8 images of ``num_classes`` learnable classes, the same for the same seed.

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
    return InMemoryImages(
        images,
        labels,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        augment=augment,
        pad=2,
        classes=[f"class_{i}" for i in range(num_classes)],
    )
