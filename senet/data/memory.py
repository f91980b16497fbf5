"""In-memory image datasets (MNIST/CIFAR sized) with the paper's augmentation done on tensors,
and the options every in-memory dataset takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from senet.data.base import (
    DataOptionError,
    DatasetInfo,
    DatasetOptions,
    check_count,
    check_flag,
    check_stats,
)
from senet.data.transforms import check_cutout
from senet.data.transforms import cutout as apply_cutout


class InMemoryImages(Dataset):
    """uint8 images held as one (N, C, H, W) tensor; item = (normalised float image, label).

    Training augmentation is the CIFAR recipe of the paper, on tensors: random horizontal flip,
    ``pad`` pixels of zero padding, then a random crop back to H x W, then Cutout of side
    ``cutout`` if > 0 (SE paper Table 4, Shake-Shake rows). On tensors it runs 2-3x
    as fast as torchvision's per-image PIL transforms (``benchmarks/bench_data.py``).
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        pad: int = 4,
        flip: bool = True,
        cutout: int = 0,
        classes: Sequence[str] = (),
    ) -> None:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images = images.contiguous()
        self.targets = targets.long()
        channels = images.shape[1]
        self.mean, self.std = tuple(mean), tuple(std)
        # Normalisation folded into one multiply-add: x/255 -> (x - mean) / std.
        std_t = torch.tensor(std, dtype=torch.float32).expand(channels).reshape(-1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).expand(channels).reshape(-1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.augment = augment
        self.pad = pad
        self.flip = flip
        self.cutout = check_cutout(cutout)
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float().mul_(self.scale).add_(self.shift)
        if self.augment:
            x = self._augment(x)
        return x, int(self.targets[index])

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Flip, zero-pad (in normalised space, zero = black pixel), random crop, [Cutout]."""
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        if self.pad > 0:
            h, w = x.shape[-2:]
            black = self.shift  # the normalised value of a 0-intensity pixel, per channel
            x = F.pad(x - black, (self.pad,) * 4) + black
            i, j = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            x = x[:, i : i + h, j : j + w]
        x = x.contiguous()
        if self.cutout:
            x = apply_cutout(x, self.cutout)
        return x

    def with_images(
        self, images: torch.Tensor, targets: torch.Tensor | None = None
    ) -> InMemoryImages:
        """A new dataset of ``images`` (and ``targets``, default: the same labels) with this
        one's normalisation and augmentation; this one is left as it is."""
        return InMemoryImages(
            images,
            self.targets if targets is None else targets,
            mean=self.mean,
            std=self.std,
            augment=self.augment,
            pad=self.pad,
            flip=self.flip,
            cutout=self.cutout,
            classes=self.classes,
        )

    def subset(self, size: int | None) -> InMemoryImages:
        """The first ``size`` images (all when None), sharing storage."""
        if size is None or size >= len(self):
            return self
        return self.with_images(self.images[:size], self.targets[:size])


@dataclass(frozen=True, kw_only=True)
class InMemoryOptions(DatasetOptions):
    """Options of every in-memory dataset: the first ``size`` images, training augmentation
    (flip + pad + crop, and Cutout of side ``cutout``), a resize to ``image_size``, and
    ``mean``/``std`` in place of the dataset's statistics."""

    size: int | None = None
    augment: bool = False
    cutout: int = 0
    image_size: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        check_count("size", self.size)
        check_flag("augment", self.augment)
        check_cutout(self.cutout)
        if self.cutout and not self.augment:
            raise DataOptionError(
                "cutout", self.cutout, "needs augment=True (Cutout is training augmentation)"
            )
        check_count("image_size", self.image_size)
        for option in ("mean", "std"):
            check_stats(option, getattr(self, option))

    def make(
        self, images: torch.Tensor, targets: torch.Tensor, info: DatasetInfo, *, pad: int
    ) -> tuple[InMemoryImages, DatasetInfo]:
        """The dataset of these uint8 (N, C, H, W) ``images`` with the options applied, made
        once (no later change), and ``info`` updated to match."""
        if self.size is not None:
            images, targets = images[: self.size], targets[: self.size]
        if self.image_size is not None and self.image_size != images.shape[-1]:
            images = resized(images, self.image_size)
        channels = images.shape[1]
        mean, std = tuple(self.mean or info.mean), tuple(self.std or info.std)
        for option, stats in (("mean", self.mean), ("std", self.std)):
            if stats is not None and len(stats) not in (1, channels):
                count = "1 value" if channels == 1 else f"1 or {channels} values"
                raise DataOptionError(
                    option, stats, f"needs {count} ({info.name} has {channels}-channel images)"
                )
        dataset = InMemoryImages(
            images,
            targets,
            mean=mean,
            std=std,
            augment=self.augment,
            pad=pad,
            cutout=self.cutout,
            classes=info.classes,
        )
        return dataset, replace(info, image_size=images.shape[-1], mean=mean, std=std)


def resized(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> a new uint8 (N, C, side, side) tensor (bilinear, antialiased)."""
    out = F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)
