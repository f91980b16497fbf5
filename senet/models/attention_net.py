"""Residual Attention Networks (Wang et al., CVPR 2017): Attention-56/92 and a CIFAR Attention-92.

The trunk is a pre-activation bottleneck ResNet; after the first residual unit of each of the
first three stages sit ``modules[i]`` attention modules (``ResidualAttentionModule``: p = 1,
t = 2, r = 1), whose soft-mask branches go down and back up ``depth`` = 3, 2, 1 times so that
every mask bottoms out at the same resolution (input / 32 on ImageNet, 7x7 at 224). Depth counts
the trunk's weighted layers: (units x 3) + stem + fc, mask branches excluded, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from senet.layers.residual_attention import PreActUnit, ResidualAttentionModule
from senet.layers.validate import check_positive_int
from senet.models._base import ClassifierNet, build, check_in_chans
from senet.models._pretrained import cifar_cfg, imagenet_cfg
from senet.models._registry import register_model

# Soft-mask depth of the attention modules in stages 1-3 (paper Sec. 3.3 / Table 2).
MASK_DEPTHS: tuple[int, int, int] = (3, 2, 1)
STEMS = {"imagenet": 4, "cifar": 1}  # stem -> its stride (7x7/2 conv + 3x3/2 max pool, or 3x3)


class ProjectionUnit(nn.Module):
    """Pre-activation bottleneck that changes width or stride: BN, ReLU, then 1x1, BN, ReLU,
    3x3 (stride), BN, ReLU, 1x1 beside a 1x1 (stride) projection of the same activations, Add."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        mid = out_channels // 4
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=True)
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=False),
        )
        # He et al. 2016b: the projection reads the pre-activated input, like the branch.
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(x))
        return self.shortcut(x) + self.branch(x)


class ResidualAttentionNet(ClassifierNet):
    """Residual Attention Network: Stem, 3 x [ProjectionUnit, AttentionModule x m], ProjectionUnit,
    PreActUnit x (final_units - 1), BN, ReLU, GlobalAvgPool, [Dropout], FC.

    Args:
        modules: attention modules in stages 1-3 (Attention-56: (1, 1, 1); -92: (1, 2, 3)).
        widths: output channels of the four stages (bottleneck width = width / 4).
        stem: ``"imagenet"`` (7x7/2 conv, 64 channels, BN, ReLU, 3x3/2 max pool) or ``"cifar"``
            (3x3 conv, ``stem_width`` channels).
        stem_width: channels of the stem conv.
        strides: strides of the four stages' first units.
        final_units: residual units of the last stage.
        num_classes, in_chans, drop_rate: classifier outputs (0: features only), image channels,
            dropout before the classifier.
    """

    def __init__(
        self,
        *,
        modules: Sequence[int] = (1, 1, 1),
        widths: Sequence[int] = (256, 512, 1024, 2048),
        stem: str = "imagenet",
        stem_width: int = 64,
        strides: Sequence[int] = (1, 2, 2, 2),
        final_units: int = 3,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if len(modules) != 3 or len(widths) != 4 or len(strides) != 4:
            raise ValueError(
                f"{owner}: modules needs 3 counts (stages 1-3), widths and strides 4 values, "
                f"got modules={modules!r}, widths={widths!r}, strides={strides!r}"
            )
        for value in (*modules, *widths, *strides, final_units, stem_width):
            check_positive_int(owner, "modules, widths, strides, final_units", value)
        if stem not in STEMS:
            raise ValueError(f"{owner}: stem must be one of {list(STEMS)}, got {stem!r}")
        self.in_chans = check_in_chans(owner, in_chans)
        self.stem_kind = stem
        self.strides = tuple(strides)
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_width, 3, padding=1, bias=False))
        in_chs = stem_width
        for index, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            first = (
                PreActUnit(width)
                if in_chs == width and stride == 1
                else ProjectionUnit(in_chs, width, stride)
            )
            units: list[nn.Module] = [first]
            if index < 3:
                units += [
                    ResidualAttentionModule(width, depth=MASK_DEPTHS[index])
                    for _ in range(modules[index])
                ]
            else:
                units += [PreActUnit(width) for _ in range(final_units - 1)]
            self.add_module(f"stage{index + 1}", nn.Sequential(*units))
            in_chs = width
        self.final_norm = nn.BatchNorm2d(in_chs)
        self.final_act = nn.ReLU(inplace=True)
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)

    def min_input_size(self) -> int:
        """The smallest input side at which every soft mask halves a real map ``depth`` times."""
        stride, need = STEMS[self.stem_kind], 1
        for index, depth in enumerate(MASK_DEPTHS):
            stride *= self.strides[index]
            need = max(need, stride * 2**depth)
        return need

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is (N, in_chans, H, W) with H, W >= min_input_size()."""
        owner = type(self).__name__
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{owner}(in_chans={self.in_chans}) expects (N, {self.in_chans}, H, W) images, "
                f"got shape {tuple(x.shape)}"
            )
        need = self.min_input_size()
        if min(x.shape[-2:]) < need:
            raise ValueError(
                f"{owner}: a {x.shape[-2]}x{x.shape[-1]} input is too small for its soft-mask "
                f"branches, which halve the stage maps {MASK_DEPTHS} times and upsample back; "
                f"they need inputs of at least {need}x{need} (e.g. set data.image_size={need} "
                f"or larger; the paper uses {224 if self.stem_kind == 'imagenet' else 32})"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32) (H/4 for the CIFAR stem)."""
        self.check_input(x)
        x = self.stem(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        return self.final_act(self.final_norm(x))


def _imagenet(name: str, kwargs: dict[str, Any], **arch: Any) -> ResidualAttentionNet:
    model = build(ResidualAttentionNet, arch, kwargs)
    model.pretrained_cfg = imagenet_cfg(name, model.in_chans)
    model.pretrained_cfg["first_conv"] = "stem.0"
    return model


@register_model
def attention56(**kwargs: Any) -> ResidualAttentionNet:
    """Attention-56 (Wang et al. 2017, Table 2): one attention module per stage."""
    return _imagenet("attention56", kwargs, modules=(1, 1, 1))


@register_model
def attention92(**kwargs: Any) -> ResidualAttentionNet:
    """Attention-92 (Wang et al. 2017, Table 2): 1, 2 and 3 attention modules in stages 1-3."""
    return _imagenet("attention92", kwargs, modules=(1, 2, 3))


@register_model
def attention92_cifar(**kwargs: Any) -> ResidualAttentionNet:
    """Attention-92 for 32x32 images: 3x3 stem; ResNet-164's widths 64, 128, 256 (the paper's
    ~1.9M-parameter CIFAR net); stage maps 32, 16, 8, 8; masks bottom out at 4x4."""
    arch = dict(
        modules=(1, 2, 3),
        widths=(64, 128, 256, 256),
        stem="cifar",
        stem_width=16,
        strides=(1, 2, 2, 1),
        num_classes=10,
    )
    model = build(ResidualAttentionNet, arch, kwargs)
    model.pretrained_cfg = {**cifar_cfg(model.in_chans), "first_conv": "stem.0"}
    return model
