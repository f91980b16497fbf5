"""Inception-ResNet-v2 (Szegedy et al. 2017; paper Table 2), 299x299 input.

SE-Inception-ResNet-v2 puts SE on the residual branch before the sum (paper Sec. 4, as in
SE-ResNet) of each of the 40 residual blocks (10 x Block35, 20 x Block17, 10 x Block8):
``x + scale * SE(F(x))``, and on the output of the 3 Inception modules without a residual
branch (43 SE blocks). Two choices the paper leaves open, decided here:

* SE acts *before* the residual scaling (0.17, 0.10, 0.20). The scaling belongs to the sum: it
  stabilises the addition of a wide branch, it is a constant, and an SE gate after it would see
  inputs 5-10x smaller than SE anywhere else in the network (its first FC would have to learn
  that scale back). Before it, SE sees the branch output exactly as SE-ResNet's SE does.
* The non-residual Mixed_5b (stem Inception module) and the reduction blocks Mixed_6a/Mixed_7a
  are plain Inception modules, so they get SE on their output as SE-BN-Inception's modules do
  (its stride-2 modules 3c and 4e included; paper Fig. 2). This is also where ``senet.retrofit``
  puts SE on any Inception-ResNet-v2, so the two agree. The paper's FLOPs (11.75 -> 11.76)
  cannot decide it: the three modules' SE add < 0.001 G.

The layout (module names, BN eps 1e-3, valid-padding convs, linear 1x1 conv with bias at the end
of each branch) is that of Cadene's ``inceptionresnetv2`` and timm's ``inception_resnet_v2``.
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
from senet.models.conv_unit import ConvBnAct, Size, check_attn_kwargs


def _unit(
    in_chs: int, out_chs: int, kernel_size: Size, stride: int = 1, padding: Size = 0
) -> ConvBnAct:
    # TensorFlow's BN epsilon, kept by every public port of the Google weights.
    return ConvBnAct(in_chs, out_chs, kernel_size, stride=stride, padding=padding, eps=1e-3)


class _InceptionModule(nn.Module):
    """Concatenated branches, then the optional attention on the module output (Fig. 2)."""

    def _init_attn(self, attn: AttnLayer, attn_kwargs: dict[str, Any] | None, chs: int) -> None:
        self.attn = create_attn(attn, chs, **(attn_kwargs or {}))

    def _join(self, branches: list[torch.Tensor]) -> torch.Tensor:
        out = torch.cat(branches, 1)
        return out if self.attn is None else self.attn(out)


class Mixed5b(_InceptionModule):
    """Stem Inception module (35x35): Concat(1x1, 1x1-5x5, 1x1-3x3-3x3, AvgPool-1x1), [Attn]."""

    def __init__(self, attn: AttnLayer = None, attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._init_attn(attn, attn_kwargs, 320)
        self.branch0 = _unit(192, 96, 1)
        self.branch1 = nn.Sequential(_unit(192, 48, 1), _unit(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            _unit(192, 64, 1), _unit(64, 96, 3, padding=1), _unit(96, 96, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, 1, padding=1, count_include_pad=False), _unit(192, 64, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._join([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)])


class Mixed6a(_InceptionModule):
    """Reduction-A (35 -> 17): Concat(3x3/2, 1x1-3x3-3x3/2, MaxPool/2), [Attn]."""

    def __init__(self, attn: AttnLayer = None, attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._init_attn(attn, attn_kwargs, 1088)
        self.branch0 = _unit(320, 384, 3, 2)
        self.branch1 = nn.Sequential(
            _unit(320, 256, 1), _unit(256, 256, 3, padding=1), _unit(256, 384, 3, 2)
        )
        self.branch2 = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._join([self.branch0(x), self.branch1(x), self.branch2(x)])


class Mixed7a(_InceptionModule):
    """Reduction-B (17 -> 8): Concat(1x1-3x3/2, 1x1-3x3/2, 1x1-3x3-3x3/2, MaxPool/2), [Attn]."""

    def __init__(self, attn: AttnLayer = None, attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._init_attn(attn, attn_kwargs, 2080)
        self.branch0 = nn.Sequential(_unit(1088, 256, 1), _unit(256, 384, 3, 2))
        self.branch1 = nn.Sequential(_unit(1088, 256, 1), _unit(256, 288, 3, 2))
        self.branch2 = nn.Sequential(
            _unit(1088, 256, 1), _unit(256, 288, 3, padding=1), _unit(288, 320, 3, 2)
        )
        self.branch3 = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._join([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)])


class InceptionResBlock(nn.Module):
    """Inception-ResNet block: Concat(branches), Conv1x1 (bias, linear), [Attn], x scale,
    Add input, [ReLU]."""

    def __init__(
        self,
        kind: str,
        *,
        scale: float,
        relu: bool = True,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.scale = scale
        if kind == "block35":  # 35x35, 320 channels
            chs, cat = 320, 128
            self.branch0 = _unit(chs, 32, 1)
            self.branch1 = nn.Sequential(_unit(chs, 32, 1), _unit(32, 32, 3, padding=1))
            self.branch2 = nn.Sequential(
                _unit(chs, 32, 1), _unit(32, 48, 3, padding=1), _unit(48, 64, 3, padding=1)
            )
        elif kind == "block17":  # 17x17, 1088 channels
            chs, cat = 1088, 384
            self.branch0 = _unit(chs, 192, 1)
            self.branch1 = nn.Sequential(
                _unit(chs, 128, 1),
                _unit(128, 160, (1, 7), padding=(0, 3)),
                _unit(160, 192, (7, 1), padding=(3, 0)),
            )
            self.branch2 = None
        elif kind == "block8":  # 8x8, 2080 channels
            chs, cat = 2080, 448
            self.branch0 = _unit(chs, 192, 1)
            self.branch1 = nn.Sequential(
                _unit(chs, 192, 1),
                _unit(192, 224, (1, 3), padding=(0, 1)),
                _unit(224, 256, (3, 1), padding=(1, 0)),
            )
            self.branch2 = None
        else:
            raise ValueError(f"InceptionResBlock: kind must be block35/17/8, got {kind!r}")
        self.conv2d = nn.Conv2d(cat, chs, 1)
        self.attn = create_attn(attn, chs, **(attn_kwargs or {}))
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch0(x), self.branch1(x)]
        if self.branch2 is not None:
            branches.append(self.branch2(x))
        out = self.conv2d(torch.cat(branches, 1))
        if self.attn is not None:
            out = self.attn(out)
        return self.act(out * self.scale + x)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, scale={self.scale}"


class InceptionResNetV2(ClassifierNet):
    """Inception-ResNet-v2: stem (5 convs, 2 max pools), Mixed_5b, 10 x Block35, Mixed_6a,
    20 x Block17, Mixed_7a, 9 x Block8 + Block8 (no ReLU), Conv1x1-1536, GlobalAvgPool,
    [Dropout], FC.

    Args:
        num_classes, in_chans: classifier outputs (0: the 1536-d features); image channels.
        attn, attn_kwargs: attention on each residual block's branch, before the scaling and
            the sum, and on the output of the three Mixed (non-residual) Inception modules
            (paper: ``"se"``).
        drop_rate: dropout before the classifier (Cadene's port trains with 0.5, timm's 0).
    """

    def __init__(
        self,
        *,
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
        a = {"attn": attn, "attn_kwargs": attn_kwargs}
        self.conv2d_1a = _unit(in_chans, 32, 3, 2)
        self.conv2d_2a = _unit(32, 32, 3)
        self.conv2d_2b = _unit(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = _unit(64, 80, 1)
        self.conv2d_4a = _unit(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, 2)
        self.mixed_5b = Mixed5b(**a)
        self.repeat = nn.Sequential(
            *[InceptionResBlock("block35", scale=0.17, **a) for _ in range(10)]
        )
        self.mixed_6a = Mixed6a(**a)
        self.repeat_1 = nn.Sequential(
            *[InceptionResBlock("block17", scale=0.10, **a) for _ in range(20)]
        )
        self.mixed_7a = Mixed7a(**a)
        self.repeat_2 = nn.Sequential(
            *[InceptionResBlock("block8", scale=0.20, **a) for _ in range(9)]
        )
        self.block8 = InceptionResBlock("block8", scale=1.0, relu=False, **a)
        self.conv2d_7b = _unit(2080, 1536, 1)
        self.num_features = 1536
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def make_cfg(self, name: str) -> dict[str, Any]:
        # The Google weights (and every port of them) expect inputs scaled to [-1, 1].
        return family_cfg(
            name,
            self.in_chans,
            size=299,
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
            crop_pct=0.8975,
            first_conv="conv2d_1a.conv",
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 299, 299) -> (N, 1536, 8, 8)."""
        x = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))
        x = self.maxpool_5a(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat(self.mixed_5b(x))
        x = self.repeat_1(self.mixed_6a(x))
        x = self.repeat_2(self.mixed_7a(x))
        return self.conv2d_7b(self.block8(x))


register_twins(
    InceptionResNetV2,
    "inception_resnet_v2",
    "Inception-ResNet-v2 (Szegedy et al. 2017; paper Table 2) at 299x299.",
    "SE-Inception-ResNet-v2 (paper Table 2): SE on each residual block's branch, before the "
    "residual scaling and the sum, and on the 3 Mixed/reduction modules' outputs.",
    layouts={"senet": {}, "inception_resnet_v2": {}},
)
