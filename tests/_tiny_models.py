"""Tiny registered models for the training tests (fast on CPU; no dependency on the zoo)."""

from __future__ import annotations

from torch import nn

from senet.models._registry import list_models, register_model


class TinyNet(nn.Module):
    """Conv-BN-ReLU, Conv-BN-ReLU, global average pool, FC (with an optional SE-like gate)."""

    def __init__(self, *, num_classes: int = 10, in_chans: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


if "_test_tinynet" not in list_models():

    @register_model
    def _test_tinynet(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> TinyNet:
        return TinyNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
