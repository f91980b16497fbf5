"""A minimal Caffe-layout (SE-)ResNet-50 for the profiler tests, independent of senet's zoo.

Caffe layout: the stride of a downsampling bottleneck sits on its first 1x1 conv. With
``se=True`` every bottleneck ends in an SE block (1x1-conv FCs with bias, reduction 16) before the
residual add, as in the authors' release.
"""

from __future__ import annotations

import torch
from torch import nn

from senet.layers import SqueezeExcite


class CaffeBottleneck(nn.Module):
    """1x1 (stride), BN, ReLU, 3x3, BN, ReLU, 1x1, BN, [SE], Add, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int, se: bool) -> None:
        super().__init__()
        out = 4 * width
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se = SqueezeExcite(out, 16) if se else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            if stride != 1 or in_channels != out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.se(self.bn3(self.conv3(y)))
        return self.relu(y + self.downsample(x))


class CaffeResNet50(nn.Module):
    """7x7/2 stem, 3x3/2 max pool, bottleneck stages [3, 4, 6, 3], global pool, FC 1000."""

    def __init__(self, se: bool = False) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, channels = [], 64
        for i, (count, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
            stage = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(CaffeBottleneck(channels, width, stride, se))
                channels = 4 * width
            blocks.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))
