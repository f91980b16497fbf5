"""Residual attention learning: a trunk modulated by a soft mask (Wang et al., CVPR 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers.validate import check_feature_map, check_positive_int


def _bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
    ]


class PreActUnit(nn.Module):
    """Pre-activation bottleneck residual unit: BN, ReLU, 1x1, BN, ReLU, 3x3, BN, ReLU, 1x1, Add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(1, channels // 4)
        self.branch = nn.Sequential(
            *_bn_relu_conv(channels, mid, 1),
            *_bn_relu_conv(mid, mid, 3),
            *_bn_relu_conv(mid, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def _units(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(PreActUnit(channels) for _ in range(count)))


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down mask: MaxPool, r units, [inner branch + skip unit], r units, Upsample.

    ``depth`` is the number of nested down/up levels (the paper uses 3, 2, 1 for stages 1-3).
    """

    def __init__(self, channels: int, depth: int = 1, units: int = 1) -> None:
        super().__init__()
        self.down = nn.MaxPool2d(3, stride=2, padding=1)
        self.encode = _units(channels, units)
        self.skip = PreActUnit(channels) if depth > 1 else None
        self.inner = SoftMaskBranch(channels, depth - 1, units) if depth > 1 else None
        self.decode = _units(channels, units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encode(self.down(x))
        if self.inner is not None:
            y = self.inner(y) + self.skip(y)
        y = self.decode(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class SoftMask(nn.Sequential):
    """The soft mask M(x) of an attention module: SoftMaskBranch, BN, ReLU, 1x1, BN, ReLU, 1x1,
    Sigmoid. A ``Sequential`` (same state-dict keys); its own class lets ``senet.profile`` count
    its work in the attention share."""


class ResidualAttention(nn.Module):
    """Attention residual learning (Wang et al., 2017): out = (1 + M(x)) * T(x).

    ``trunk`` computes T(x) and ``mask`` computes M(x) in [0, 1] with T's output shape; the
    identity term keeps the trunk's features where the mask is near zero.
    """

    def __init__(self, trunk: nn.Module, mask: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.mask(x)) * self.trunk(x)


class ResidualAttentionModule(nn.Module):
    """The paper's attention module: p units, then (1 + M) * T with t trunk units and a soft mask
    of ``depth`` levels, then p units. Keeps channels and spatial size."""

    def __init__(
        self, channels: int, *, depth: int = 1, p: int = 1, t: int = 2, r: int = 1
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        check_positive_int(owner, "depth", depth)
        self.pre = _units(channels, p)
        mask = SoftMask(
            SoftMaskBranch(channels, depth, check_positive_int(owner, "r", r)),
            *_bn_relu_conv(channels, channels, 1),
            *_bn_relu_conv(channels, channels, 1),
            nn.Sigmoid(),
        )
        trunk = _units(channels, check_positive_int(owner, "t", t))
        self.attention = ResidualAttention(trunk, mask)
        self.post = _units(channels, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(type(self).__name__, self.channels, x)
        return self.post(self.attention(self.pre(x)))
