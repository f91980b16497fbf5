"""A ShuffleNet v1 written the way megvii's public reference writes it, for retrofit tests.

Two traits of that layout matter to retrofit, and are kept on purpose: the unit's forward
branches on its stride (add for stride 1, concat with an average-pooled shortcut for stride 2),
and the channel shuffle asserts on ``x.data.size()``, which ``torch.fx`` cannot trace. The residual
branch is split in two Sequentials around the shuffle, so the branch's end is the output of
``branch_main_2``; a reader that falls back to the children finds ``branch_main_1`` first.
Written from the ShuffleNet paper (Zhang et al., 2018, Fig. 2 and Table 1), not copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Output channels of stages 2..4 for each group count g (ShuffleNet paper, Table 1, 1x width).
STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088)}
STAGE_REPEATS = (4, 8, 4)


class ShuffleUnitV1(nn.Module):
    """1x1 group conv -> BN -> ReLU -> shuffle -> 3x3 depthwise -> BN -> 1x1 group conv -> BN,
    then relu(x + branch) (stride 1) or cat(avgpool(x), relu(branch)) (stride 2)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        groups: int,
        stride: int,
        first_group: bool,
        traceable: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.traceable = traceable
        self.groups = groups
        mid = out_ch // 4
        produced = out_ch - in_ch if stride == 2 else out_ch
        self.branch_main_1 = nn.Sequential(
            nn.Conv2d(in_ch, mid, 1, groups=1 if first_group else groups, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
        )
        self.branch_main_2 = nn.Sequential(
            nn.Conv2d(mid, produced, 1, groups=groups, bias=False),
            nn.BatchNorm2d(produced),
        )
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(3, 2, 1)

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.data.size()
        if not self.traceable:  # control flow on a traced value: fx cannot trace this
            assert c % self.groups == 0
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch_main_1(x)
        if self.groups > 1:
            y = self.shuffle(y)
        y = self.branch_main_2(y)
        if self.stride == 1:
            return F.relu(x + y)
        return torch.cat((self.branch_proj(x), F.relu(y)), 1)


class ShuffleNetV1(nn.Module):
    """3x3 conv (24, s2) -> max-pool -> stages 2..4 of ShuffleUnitV1 -> global pool -> linear.

    ``traceable=True`` drops the shuffle's assert, so that fx can read the same network.
    """

    def __init__(self, groups: int = 3, num_classes: int = 1000, traceable: bool = False) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(
            nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        units = []
        in_ch = 24
        for stage, (out_ch, repeats) in enumerate(
            zip(STAGE_CHANNELS[groups], STAGE_REPEATS, strict=True)
        ):
            for i in range(repeats):
                units.append(
                    ShuffleUnitV1(
                        in_ch, out_ch, groups=groups, stride=2 if i == 0 else 1,
                        first_group=stage == 0 and i == 0, traceable=traceable,
                    )
                )  # fmt: skip
                in_ch = out_ch
        self.features = nn.Sequential(*units)
        self.classifier = nn.Linear(in_ch, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.maxpool(self.first_conv(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
