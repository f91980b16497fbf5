"""RTS distortion (Jaderberg et al., NeurIPS 2015, Sec. 4.1): rotate, scale, translate on a canvas.

Each image is rotated by U(-45, 45) degrees, scaled by U(0.7, 1.2) and placed at a random
position on a larger black canvas (42x42 for 28x28 images), once, with a fixed generator: the
distorted set is the same in every run, so runs with and without an STN see the same data.
``RTSDistorted`` wraps an in-memory dataset that way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from senet.data.base import DataOptionError
from senet.data.memory import InMemoryImages

DISTORTIONS = ("none", "rts")


def default_canvas(side: int) -> int:
    """1.5 x the image side, as the STN paper's 42x42 canvas for 28x28 MNIST."""
    return round(1.5 * side)


def rts_distort(
    images: torch.Tensor,
    *,
    canvas: int | None = None,
    degrees: float = 45.0,
    scale: tuple[float, float] = (0.7, 1.2),
    seed: int = 0,
    chunk: int = 4096,
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, canvas, canvas): rotated, scaled, translated copies.

    The translation moves the image centre uniformly within +-(canvas - H) / 2 pixels, so an
    unscaled image stays on the canvas. Bilinear resampling; the background is 0 (black).
    """
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(
            f"rts_distort expects uint8 (N, C, H, W) images, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    n, c, height, width = images.shape
    side = max(height, width)
    canvas = default_canvas(side) if canvas is None else canvas
    if canvas < side:
        raise DataOptionError(
            "canvas",
            canvas,
            f"smaller than the {height}x{width} images; the RTS canvas must be at least {side} "
            f"(default: {default_canvas(side)})",
        )
    gen = torch.Generator().manual_seed(seed)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    zoom = scale[0] + torch.rand(n, generator=gen) * (scale[1] - scale[0])
    # Shift in normalised canvas units ([-1, 1] spans `canvas` pixels).
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (canvas - side) / canvas
    # affine_grid maps output (canvas) coordinates to input ones: the inverse transform,
    # p_in = R(-angle) (p_out - t) / zoom.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, sin, -(cos * shift[:, 0] + sin * shift[:, 1])], 1),
            torch.stack([-sin, cos, sin * shift[:, 0] - cos * shift[:, 1]], 1),
        ],
        1,
    )
    pad_h, pad_w = canvas - height, canvas - width
    out = torch.empty(n, c, canvas, canvas, dtype=torch.uint8)
    for start in range(0, n, chunk):
        part = images[start : start + chunk].float()
        part = F.pad(part, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        grid = F.affine_grid(theta[start : start + chunk], list(part.shape), align_corners=False)
        warped = F.grid_sample(part, grid, mode="bilinear", align_corners=False)
        out[start : start + chunk] = warped.round_().clamp_(0, 255).to(torch.uint8)
    return out


class RTSDistorted(InMemoryImages):
    """The images of ``base`` RTS-distorted onto a ``canvas``-sided canvas (default 1.5 x the
    image side), once, drawn from ``seed``; labels, normalisation and augmentation as ``base``'s.
    ``base`` is left as it is."""

    def __init__(self, base: InMemoryImages, *, canvas: int | None = None, seed: int = 0) -> None:
        super().__init__(
            rts_distort(base.images, canvas=canvas, seed=seed),
            base.targets,
            mean=base.mean,
            std=base.std,
            augment=base.augment,
            pad=base.pad,
            flip=base.flip,
            cutout=base.cutout,
            classes=base.classes,
        )
