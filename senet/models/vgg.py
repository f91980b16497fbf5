"""VGG-16 with BN (paper Table 2): SE-VGG-16 puts SE after the ReLU that follows each of 13 convs.

The paper trains VGG-16 with BN after every convolution (as torchvision's ``vgg16_bn``); the head
is torchvision's: adaptive 7x7 average pool, FC-4096, ReLU, Dropout, FC-4096, ReLU, Dropout, FC.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from senet.layers.create_attn import AttnLayer
from senet.models._base import ClassifierNet, check_in_chans
from senet.models._pretrained import family_cfg
from senet.models._twins import register_twins
from senet.models.conv_unit import ConvBnAct, check_attn_kwargs

# VGG-16 ("D"): output channels of the convs of each of the five stages; a 2x2 max pool ends each.
VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG(ClassifierNet):
    """VGG with BN: 5 stages of [Conv3x3, BN, ReLU, [Attn]] x n + MaxPool2x2; AdaptiveAvgPool 7x7,
    FC-4096, ReLU, Dropout, FC-4096, ReLU, Dropout, FC.

    Args:
        stages: output channels of every conv, per stage (default VGG-16).
        num_classes, in_chans: classifier outputs (0: the 4096-d features); image channels.
        attn, attn_kwargs: attention after every conv unit's ReLU (the paper: ``"se"``, r = 16).
        drop_rate: dropout after each of the two hidden FC layers (VGG: 0.5).
    """

    def __init__(
        self,
        *,
        stages: tuple[tuple[int, ...], ...] = VGG16,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_chans = check_in_chans(owner, in_chans)
        check_attn_kwargs(owner, attn, attn_kwargs)
        self.features = nn.Sequential()
        in_chs = in_chans
        for s, widths in enumerate(stages, start=1):
            for j, width in enumerate(widths, start=1):
                unit = ConvBnAct(in_chs, width, 3, padding=1, attn=attn, attn_kwargs=attn_kwargs)
                self.features.add_module(f"conv{s}_{j}", unit)
                in_chs = width
            self.features.add_module(f"pool{s}", nn.MaxPool2d(2, 2))
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"{owner}: drop_rate must be in [0, 1), got {drop_rate}")
        self.pre_logits = nn.Sequential(
            nn.Linear(in_chs * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.num_features = 4096
        self._init_head(num_classes, 0.0)
        # VGG keeps a 7x7 map for its first FC layer (any input size is pooled to it).
        self.global_pool = nn.AdaptiveAvgPool2d(7)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def make_cfg(self, name: str) -> dict[str, Any]:
        return family_cfg(name, self.in_chans, first_conv="features.conv1_1.conv")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, 512, H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool to 7x7, flatten, the two hidden FC layers; then the classifier unless
        ``pre_logits``."""
        x = self.pre_logits(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.fc(x)


register_twins(
    VGG,
    "vgg16_bn",
    "VGG-16 with BN after every conv (Simonyan & Zisserman 2015; paper Table 2).",
    "SE-VGG-16 (paper Table 2): SE after the ReLU that follows each of the 13 conv+BN units.",
    layouts={"senet": {}, "torchvision_vgg": {}},
)
