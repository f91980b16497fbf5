"""ShuffleNet v1 (Zhang et al. 2018; paper Table 3): SE-ShuffleNet puts SE at the end of each
unit's residual branch (after its last BN), before the add (stride 1) or the concat (stride 2).

Layout of the ShuffleNet paper's Table 1 (and megvii's release): Conv3x3/2 (24), MaxPool/2, three
stages of 4/8/4 units; the bottleneck width is a quarter of the stage's output width; the first
1x1 conv of stage 2 is not grouped (its input has only 24 channels).
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
from senet.models._pretrained import family_cfg
from senet.models._twins import register_twins
from senet.models.conv_unit import ConvBnAct, check_attn_kwargs

# ShuffleNet paper Table 1: stage output widths at width 1x for g = 1, 2, 3, 4, 8.
STAGE_WIDTHS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_UNITS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups: (N, g*k, H, W) -> (N, k*g, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet unit: GConv1x1, BN, ReLU, Shuffle, DWConv3x3, BN, GConv1x1, BN, [Attn];
    then ReLU(x + branch) (stride 1) or ReLU(Concat(AvgPool3x3/2(x), branch)) (stride 2)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int,
        groups: int,
        group_first: bool = True,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.groups = groups
        mid = out_chs // 4
        branch_out = out_chs - in_chs if stride == 2 else out_chs
        self.conv1 = ConvBnAct(in_chs, mid, 1, groups=groups if group_first else 1)
        self.conv_dw = ConvBnAct(mid, mid, 3, stride=stride, padding=1, groups=mid, act=None)
        self.conv2 = ConvBnAct(mid, branch_out, 1, groups=groups, act=None)
        self.attn = create_attn(attn, branch_out, **(attn_kwargs or {}))
        self.shortcut = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else nn.Identity()
        self.concat = stride == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.conv1(x), self.groups)
        out = self.conv2(self.conv_dw(out))
        if self.attn is not None:
            out = self.attn(out)
        if self.concat:
            return F.relu(torch.cat([self.shortcut(x), out], 1))
        return F.relu(out + x)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, groups={self.groups}"


class ShuffleNetV1(ClassifierNet):
    """ShuffleNet v1: Conv3x3/2, BN, ReLU, MaxPool3x3/2, 3 stages of shuffle units (each with
    [Attn] on its branch), GlobalAvgPool, [Dropout], FC (no bias).

    Args:
        groups: g, the group count of the 1x1 convs (1, 2, 3, 4 or 8).
        width_mult: s, the ShuffleNet paper's scale factor ("1x", "0.5x" ...) on stage widths.
        num_classes, in_chans: classifier outputs (0: features only); image channels.
        attn, attn_kwargs: attention at the end of every unit's residual branch (paper: ``"se"``).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        groups: int = 3,
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
        check_positive_int(owner, "groups", groups)
        if groups not in STAGE_WIDTHS:
            raise ValueError(f"{owner}: groups must be one of {sorted(STAGE_WIDTHS)}, got {groups}")
        widths = [int(w * width_mult) for w in STAGE_WIDTHS[groups]]
        if any(w <= 0 or w % (4 * groups) for w in widths):
            raise ValueError(
                f"{owner}: width_mult={width_mult} gives stage widths {widths}; each must be a "
                f"positive multiple of 4 x groups = {4 * groups} (bottleneck width / groups)"
            )
        self.groups = groups
        self.width_mult = width_mult
        stem_chs = 24
        self.stem = nn.Sequential()
        self.stem.add_module("conv", ConvBnAct(in_chans, stem_chs, 3, stride=2, padding=1))
        self.stem.add_module("pool", nn.MaxPool2d(3, 2, padding=1))
        in_chs = stem_chs
        for index, (width, units) in enumerate(zip(widths, STAGE_UNITS, strict=True)):
            stage = []
            for j in range(units):
                stage.append(
                    ShuffleUnit(
                        in_chs,
                        width,
                        stride=2 if j == 0 else 1,
                        groups=groups,
                        group_first=not (index == 0 and j == 0),
                        attn=attn,
                        attn_kwargs=attn_kwargs,
                    )
                )
                in_chs = width
            self.add_module(f"stage{index + 2}", nn.Sequential(*stage))
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def _make_fc(self, num_classes: int) -> nn.Module:
        # The released ShuffleNet v1 classifier has no bias (1,000 fewer parameters).
        return (
            nn.Linear(self.num_features, num_classes, bias=False) if num_classes else nn.Identity()
        )

    def make_cfg(self, name: str) -> dict[str, Any]:
        return family_cfg(name, self.in_chans, first_conv="stem.conv.conv")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        return self.stage4(self.stage3(self.stage2(self.stem(x))))


register_twins(
    ShuffleNetV1,
    "shufflenet_v1_g3",
    "ShuffleNet v1 1x, g = 3 (Zhang et al. 2018; paper Table 3).",
    "SE-ShuffleNet (paper Table 3): SE at the end of each unit's residual branch, before the "
    "add/concat.",
)
