"""Tiny models for the training tests (fast on CPU), registered only while a test needs them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from torch import nn

from senet.models import _registry

# A training config that runs in well under a second: the tiny model on synthetic 16x16 images.
QUICK = [
    "model.name=_test_tinynet",
    "data.name=synthetic",
    "data.num_classes=4",
    "data.image_size=16",
    "data.synthetic_train=256",
    "data.synthetic_val=64",
    "data.batch_size=32",
    "optim.lr=1.6",
    "log.progress=none",
]


class TinyNet(nn.Module):
    """Conv-BN-ReLU, Conv(stride 2)-BN-ReLU, global average pool, FC (``norm=False``: no BN,
    convs with biases; then a step's update does not depend on how the batch is split)."""

    def __init__(
        self, *, num_classes: int = 10, in_chans: int = 3, width: int = 8, norm: bool = True
    ) -> None:
        super().__init__()

        def bn(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if norm else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=not norm),
            bn(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=not norm),
            bn(2 * width),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _tinynet(*, num_classes: int | None = 10, in_chans: int = 3, **kwargs) -> TinyNet:
    return TinyNet(num_classes=num_classes or 10, in_chans=in_chans, **kwargs)


def _fixed_head(*, num_classes: int | None = 10, in_chans: int = 3, num_classes_override: int = 7):
    """Ignores num_classes: a model whose head does not follow the data."""
    return nn.Sequential(
        nn.Conv2d(in_chans, 4, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes_override),
    )


@contextlib.contextmanager
def tiny_models_registered() -> Iterator[None]:
    """``_test_tinynet`` and ``_test_fixed_head`` in the registry, removed again afterwards (the
    zoo's tests check that the registry holds exactly the zoo)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_registry._MODELS, "_test_tinynet", _tinynet)
        mp.setitem(_registry._MODELS, "_test_fixed_head", _fixed_head)
        yield
