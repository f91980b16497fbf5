"""MobileNet v1 (Howard et al. 2017; paper Table 3): SE-MobileNet puts SE after each of the 13
depthwise-separable blocks (on the pointwise conv's output), which gives the paper's 4.7M params.

ReLU6 as in the released MobileNet and timm's ``mobilenetv1_100``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from senet.layers import create_attn
from senet.layers.create_attn import AttnLayer
from senet.models._base import ClassifierNet, check_in_chans
from senet.models._pretrained import family_cfg
from senet.models._twins import register_twins
from senet.models.conv_unit import ConvBnAct, check_attn_kwargs

# (output channels, stride) of the 13 depthwise-separable blocks at width 1.0.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def scale_width(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded to a multiple of 8, never 10% below it (as released)."""
    scaled = max(8, int(channels * width_mult + 4) // 8 * 8)
    return scaled + 8 if scaled < 0.9 * channels * width_mult else scaled


class DepthwiseSeparable(nn.Module):
    """Depthwise-separable block: DWConv3x3, BN, ReLU6, Conv1x1, BN, ReLU6, [Attn]."""

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
        self.dw = ConvBnAct(in_chs, in_chs, 3, stride=stride, padding=1, groups=in_chs, act="relu6")
        self.pw = ConvBnAct(in_chs, out_chs, 1, act="relu6")
        self.attn = create_attn(attn, out_chs, **(attn_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.dw(x))
        if self.attn is not None:
            x = self.attn(x)
        return x


class MobileNetV1(ClassifierNet):
    """MobileNet v1: Conv3x3/2, BN, ReLU6, 13 depthwise-separable blocks (each with [Attn]),
    GlobalAvgPool, [Dropout], FC.

    Args:
        width_mult: alpha, the width multiplier (1.0, 0.75, 0.5, 0.25 in the MobileNet paper).
        num_classes, in_chans: classifier outputs (0: features only); image channels.
        attn, attn_kwargs: attention after each depthwise-separable block (paper: ``"se"``).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_chans = check_in_chans(owner, in_chans)
        check_attn_kwargs(owner, attn, attn_kwargs)
        if not (isinstance(width_mult, int | float) and 0 < width_mult <= 4):
            raise ValueError(f"{owner}: width_mult must be in (0, 4], got {width_mult!r}")
        self.width_mult = width_mult
        in_chs = scale_width(32, width_mult)
        self.stem = ConvBnAct(in_chans, in_chs, 3, stride=2, padding=1, act="relu6")
        blocks = []
        for out, stride in BLOCKS:
            out_chs = scale_width(out, width_mult)
            blocks.append(
                DepthwiseSeparable(
                    in_chs, out_chs, stride=stride, attn=attn, attn_kwargs=attn_kwargs
                )
            )
            in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def make_cfg(self, name: str) -> dict[str, Any]:
        return family_cfg(name, self.in_chans, first_conv="stem.conv")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        return self.blocks(self.stem(x))


register_twins(
    MobileNetV1,
    "mobilenet_v1",
    "MobileNet v1 1.0-224 (Howard et al. 2017; paper Table 3); width_mult scales the widths.",
    "SE-MobileNet (paper Table 3): SE after each of the 13 depthwise-separable blocks.",
    layouts={"senet": {}, "timm_mobilenetv1": {}},
)
