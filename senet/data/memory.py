"""In-memory image datasets (MNIST/CIFAR sized) with the paper's augmentation done on tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

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

    def subset(self, size: int | None) -> InMemoryImages:
        """The first ``size`` images (all when None), sharing storage."""
        if size is None or size >= len(self):
            return self
        out = InMemoryImages.__new__(InMemoryImages)
        out.__dict__.update(self.__dict__)
        out.images, out.targets = self.images[:size], self.targets[:size]
        return out
