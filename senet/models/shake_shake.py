"""Shake-Shake 26 2x96d for CIFAR (Gastaldi 2017; SE paper Table 4: 2.56% -> 2.12% on CIFAR-10
with Cutout).

Two residual branches per block, each ReLU, Conv3x3, BN, ReLU, Conv3x3, BN, mixed as
``alpha * b1 + (1 - alpha) * b2``: in training alpha ~ U(0, 1) per image in the forward pass and
an independent beta ~ U(0, 1) in the backward pass ("Shake-Shake-Image"); at evaluation
alpha = 0.5. 26 layers = stem + 3 stages x 4 blocks x 2 convs + FC; widths 96, 192, 384.

SE (the paper does not say per block or per branch): one SE per block, on the mixed residual
before the sum, as in SE-ResNet; SE's gate then sees the branch output the sum receives.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers import create_attn
from senet.layers.create_attn import AttnLayer
from senet.layers.validate import check_positive_int
from senet.models._base import ClassifierNet, check_in_chans
from senet.models._pretrained import cifar_cfg
from senet.models._twins import register_twins
from senet.models.conv_unit import check_attn_kwargs


def shake(b1: torch.Tensor, b2: torch.Tensor, training: bool) -> torch.Tensor:
    """Shake-Shake mix: forward alpha, backward beta (both U(0, 1) per image); 0.5 at eval."""
    if not training:
        return 0.5 * (b1 + b2)
    shape = (b1.shape[0], 1, 1, 1)
    alpha = torch.rand(shape, device=b1.device, dtype=b1.dtype)
    beta = torch.rand(shape, device=b1.device, dtype=b1.dtype)
    # Value beta-mix + (alpha - beta)-mix = alpha-mix; the detached part carries no gradient,
    # so the gradient is the beta-mix's: beta to b1, 1 - beta to b2.
    return beta * b1 + (1 - beta) * b2 + ((alpha - beta) * (b1 - b2)).detach()


class _Branch(nn.Sequential):
    """ReLU, Conv3x3, BN, ReLU, Conv3x3, BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),  # not in place: the shortcut reads the same input
            nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
        )


class ShakeShortcut(nn.Module):
    """Downsampling shortcut: ReLU, Concat(AvgPool1x1/2-Conv1x1, Shift-AvgPool1x1/2-Conv1x1), BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_chs, out_chs // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(in_chs, out_chs - out_chs // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        a = self.conv1(x[:, :, :: self.stride, :: self.stride])
        # The second path samples the pixels the first skips (shifted by one).
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        b = self.conv2(shifted[:, :, :: self.stride, :: self.stride])
        return self.bn(torch.cat([a, b], 1))


class ShakeBlock(nn.Module):
    """Shake-Shake block: Shake(Branch1, Branch2), [Attn], Add shortcut."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.branch1 = _Branch(in_chs, out_chs, stride)
        self.branch2 = _Branch(in_chs, out_chs, stride)
        self.attn = create_attn(attn, out_chs, **(attn_kwargs or {}))
        same = stride == 1 and in_chs == out_chs
        self.shortcut = nn.Identity() if same else ShakeShortcut(in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = shake(self.branch1(x), self.branch2(x), self.training)
        if self.attn is not None:
            out = self.attn(out)
        return out + self.shortcut(x)


class ShakeShakeCifar(ClassifierNet):
    """Shake-Shake ResNet for CIFAR: Conv3x3, BN, 3 stages of Shake-Shake blocks, ReLU,
    GlobalAvgPool, [Dropout], FC.

    Args:
        depth: 6n + 2 with n blocks per stage (26: n = 4).
        base_width: channels of the first stage (96 for "2x96d"); doubled at each stage.
        num_classes, in_chans: classifier outputs (0: features only); image channels.
        attn, attn_kwargs: attention on each block's mixed residual, before the sum.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        depth: int = 26,
        base_width: int = 96,
        num_classes: int = 10,
        in_chans: int = 3,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_chans = check_in_chans(owner, in_chans)
        check_attn_kwargs(owner, attn, attn_kwargs)
        check_positive_int(owner, "base_width", base_width)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"{owner}: depth must be 6n + 2 (e.g. 26), got {depth!r}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", nn.Conv2d(in_chans, 16, 3, padding=1, bias=False))
        self.stem.add_module("bn1", nn.BatchNorm2d(16))
        in_chs = 16
        for index in range(3):
            width = base_width * 2**index
            blocks = []
            for j in range(n):
                stride = 2 if index > 0 and j == 0 else 1
                blocks.append(
                    ShakeBlock(in_chs, width, stride=stride, attn=attn, attn_kwargs=attn_kwargs)
                )
                in_chs = width
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.final_act = nn.ReLU(inplace=True)
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def make_cfg(self, name: str) -> dict[str, Any]:
        return cifar_cfg(self.in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, 4 x base_width, H/4, W/4)."""
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.final_act(x)


register_twins(
    ShakeShakeCifar,
    "shake_shake26_2x96d_cifar",
    "Shake-Shake 26 2x96d for CIFAR (Gastaldi 2017; SE paper Table 4).",
    "SE-Shake-Shake 26 2x96d (SE paper Table 4): one SE per block on the mixed residual.",
)
