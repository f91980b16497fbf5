"""The picture of what a spatial transformer learned: input canvases above its rectified outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from senet.models.stn import STNClassifier
from senet.plots.backend import pyplot


def find_stn(model: nn.Module) -> STNClassifier | None:
    """The ``STNClassifier`` in ``model`` (itself, or wrapped by DDP / compile), or None."""
    for module in model.modules():
        if isinstance(module, STNClassifier):
            return module
    return None


def rectified_pairs(
    model: nn.Module, dataset: Dataset, count: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` images of ``dataset`` and the STN's outputs for them (CPU, float)."""
    stn = find_stn(model)
    if stn is None:
        raise ValueError(
            f"{type(model).__name__} has no spatial transformer in front; train it with "
            "model.stn=affine (or wrap it with senet.with_stn)"
        )
    count = min(count, len(dataset))  # type: ignore[arg-type]
    images = torch.stack([dataset[i][0] for i in range(count)])
    ref = next(stn.stn.parameters())
    was_training = stn.training
    stn.eval()
    try:
        with torch.no_grad():
            out = stn.rectify(images.to(device=ref.device, dtype=ref.dtype))
    finally:
        stn.train(was_training)
    return images.float().cpu(), out.float().cpu()


def _show(image: torch.Tensor) -> Any:
    # Per-image min/max to [0, 1] (the images are normalised), channels last for imshow.
    low, high = image.min(), image.max()
    image = (image - low) / (high - low).clamp_min(1e-6)
    return (image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)).numpy()


def save_rectified(
    model: nn.Module,
    dataset: Dataset,
    path: str | Path,
    *,
    count: int = 8,
    notice: Callable[[str], None] | None = None,
) -> Path:
    """Save a PNG: the first ``count`` images of ``dataset`` (top) and the STN's outputs."""
    inputs, outputs = rectified_pairs(model, dataset, count)
    plt = pyplot()
    n = len(inputs)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for j in range(n):
        for row, images in enumerate((inputs, outputs)):
            ax = axes[row][j]
            ax.imshow(_show(images[j]), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][j].set_title(f"#{j}", fontsize=8)
    axes[0][0].set_ylabel(f"input {tuple(inputs.shape[-2:])}", fontsize=8)
    axes[1][0].set_ylabel(f"STN output {tuple(outputs.shape[-2:])}", fontsize=8)
    fig.suptitle("Spatial transformer: input canvases (top), rectified images the model sees")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if notice is not None:
        notice(f"STN inputs and rectified outputs -> {path}")
    return path
