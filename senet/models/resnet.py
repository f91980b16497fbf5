"""ImageNet ResNet, ResNeXt and SENet-154 with any attention at any integration point.

The layout follows the authors' Caffe models by default: a downsampling ResNet bottleneck strides
its first 1x1 conv (``stride_in_1x1=True``) and the stem max pool uses Caffe's ceil mode without
padding (``stem_pool="caffe"``). ``stride_in_1x1=False, stem_pool="torch"`` is the torchvision /
timm layout. ResNeXt and SENet-154 stride the grouped 3x3 conv in both.

Stages are numbered as in the paper (Table 13): stage 2..5 = ``layer1``..``layer4``; the attention
module of block j of stage s is ``layer{s-1}.{j}.attn``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from senet.layers.create_attn import AttnLayer
from senet.layers.validate import check_choice, check_positive_int
from senet.models._base import ClassifierNet, build, check_attn_stages, check_in_chans
from senet.models._pretrained import imagenet_cfg
from senet.models._registry import register_model
from senet.models.blocks import BasicBlock, Bottleneck, check_strategy

STAGES: tuple[int, ...] = (2, 3, 4, 5)
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
STEMS = ("7x7", "deep")
STEM_POOLS = ("caffe", "torch")


class ResNet(ClassifierNet):
    """ResNet (He et al. 2016), ResNeXt (Xie et al. 2017), SE-ResNet/SENet (Hu et al. 2018):
    Stem, MaxPool, 4 stages of residual blocks, GlobalAvgPool, [Dropout], FC.

    Args:
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1, 3x3, 1x1).
        layers: blocks per stage (stages 2-5), e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: classifier outputs; 0 gives a feature extractor.
        in_chans: input image channels.
        groups, base_width: ResNeXt cardinality C and width d per group (``32``, ``4`` for 32x4d);
            the 3x3 conv of a stage with ``planes`` has ``planes * base_width / 64 * groups``
            channels.
        halve_first_1x1: the first 1x1 conv outputs half the 3x3 width (SENet-154).
        stride_in_1x1: stride a downsampling bottleneck on its first 1x1 conv (Caffe) rather
            than on the 3x3 conv (torchvision / timm).
        stem: ``"7x7"`` (one 7x7/2 conv) or ``"deep"`` (3x3/2, 3x3, 3x3 convs, SENet-154).
        stem_width: channels out of the stem (64; 128 in SENet-154, whose deep stem is 64, 64, 128).
        stem_pool: ``"caffe"`` (3x3/2 max pool, no padding, ceil mode: the Caffe models and their
            Cadene ports) or ``"torch"`` (3x3/2, padding 1: torchvision / timm).
        down_kernel_size: kernel of the stride-2 projection shortcuts (1; 3 in SENet-154).
        attn: attention module in each block: a ``create_attn`` name (``"se"``, ``"cbam"``,
            ``"eca"``, ...), a module class ``f(channels, **attn_kwargs)``, or None.
        attn_kwargs: keyword arguments for the attention module, e.g. ``{"reduction": 8}``.
        strategy: where the attention goes: ``"standard"``, ``"pre"``, ``"post"``, ``"identity"``
            (paper Fig. 5) or ``"conv3x3"`` (Table 15); see ``senet.models.blocks``.
        attn_stages: the stages (subset of 2-5) that get attention (Table 13).
        drop_rate: dropout before the classifier (0.2 in SENet-154).
        zero_init_last: zero the last BN gamma of every residual branch, so that each block
            starts as the identity.
    """

    def __init__(
        self,
        *,
        block: str = "bottleneck",
        layers: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        base_width: int = 64,
        halve_first_1x1: bool = False,
        stride_in_1x1: bool = True,
        stem: str = "7x7",
        stem_width: int = 64,
        stem_pool: str = "caffe",
        down_kernel_size: int = 1,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
        attn_stages: Iterable[int] = STAGES,
        drop_rate: float = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        block_cls = BLOCKS[check_choice(owner, "block", block, BLOCKS)]
        layers = tuple(layers)
        if len(layers) != len(STAGES) or not all(isinstance(n, int) and n > 0 for n in layers):
            raise ValueError(f"{owner}: layers must be 4 positive block counts, got {layers!r}")
        self.in_chans = check_in_chans(owner, in_chans)
        check_positive_int(owner, "groups", groups)
        check_positive_int(owner, "base_width", base_width)
        check_positive_int(owner, "stem_width", stem_width)
        check_choice(owner, "stem", stem, STEMS)
        self.stem_pool = check_choice(owner, "stem_pool", stem_pool, STEM_POOLS)
        if down_kernel_size not in (1, 3):
            raise ValueError(f"{owner}: down_kernel_size must be 1 or 3, got {down_kernel_size!r}")
        self.strategy = check_strategy(owner, strategy, bottleneck=block == "bottleneck")
        self.attn_stages = check_attn_stages(owner, attn_stages, STAGES)
        if attn is None and attn_kwargs:
            raise ValueError(
                f"{owner}: attn_kwargs {attn_kwargs!r} given but attn is None; "
                "name the attention (attn='se') or drop attn_kwargs"
            )
        self.block = block
        self.layers = layers
        self.groups = groups
        self.stride_in_1x1 = stride_in_1x1

        self.stem = self._make_stem(in_chans, stem, stem_width, stem_pool)
        in_chs = stem_width
        for index, (stage, depth) in enumerate(zip(STAGES, layers, strict=True)):
            planes = 64 * 2**index
            stride = 1 if index == 0 else 2
            out_chs = planes * block_cls.expansion
            blocks = []
            for j in range(depth):
                kw: dict[str, Any] = {}
                if block == "bottleneck":
                    kw = {
                        "groups": groups,
                        "base_width": base_width,
                        "halve_first_1x1": halve_first_1x1,
                        "stride_in_1x1": stride_in_1x1,
                    }
                s = stride if j == 0 else 1
                blocks.append(
                    block_cls(
                        in_chs,
                        planes,
                        stride=s,
                        downsample=self._make_downsample(in_chs, out_chs, s, down_kernel_size),
                        attn=attn if stage in self.attn_stages else None,
                        attn_kwargs=attn_kwargs if stage in self.attn_stages else None,
                        strategy=strategy,
                        **kw,
                    )
                )
                in_chs = out_chs
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last)
        # Preprocessing (the registered builders add the URL of their known weights).
        self.pretrained_cfg = imagenet_cfg("", in_chans)

    @staticmethod
    def _make_stem(in_chans: int, stem: str, width: int, pool: str) -> nn.Sequential:
        """7x7/2 conv (or three 3x3 convs, the first stride 2), BN, ReLU, 3x3/2 max pool."""
        if stem == "7x7":
            convs = [nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)]
        else:
            half = width // 2
            convs = [
                nn.Conv2d(in_chans, half, 3, stride=2, padding=1, bias=False),
                nn.Conv2d(half, half, 3, padding=1, bias=False),
                nn.Conv2d(half, width, 3, padding=1, bias=False),
            ]
        stem_layers = nn.Sequential()
        for i, conv in enumerate(convs, start=1):
            stem_layers.add_module(f"conv{i}", conv)
            stem_layers.add_module(f"bn{i}", nn.BatchNorm2d(conv.out_channels))
            stem_layers.add_module(f"act{i}", nn.ReLU(inplace=True))
        if pool == "caffe":
            stem_layers.add_module("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        else:
            stem_layers.add_module("pool", nn.MaxPool2d(3, stride=2, padding=1))
        return stem_layers

    @staticmethod
    def _make_downsample(
        in_chs: int, out_chs: int, stride: int, kernel_size: int
    ) -> nn.Sequential | None:
        """Projection shortcut Conv, BN when the shape changes; 3x3 kernels only when striding."""
        if stride == 1 and in_chs == out_chs:
            return None
        k = kernel_size if stride > 1 else 1
        return nn.Sequential(
            nn.Conv2d(in_chs, out_chs, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(out_chs),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32) (rounded up in Caffe pooling)."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


def _resnet(name: str, kwargs: dict[str, Any], **arch: Any) -> ResNet:
    model = build(ResNet, arch, kwargs)
    model.pretrained_cfg = imagenet_cfg(name, model.in_chans)
    return model


# Checkpoint layouts the ResNet family reads, each with the architecture its weights need:
# torchvision/timm put the stride on the 3x3 conv and pad the stem pool; Cadene's Caffe ports
# keep the stride where each architecture's default puts it and use Caffe's stem pool.
RESNET_LAYOUTS = {
    "senet": {},
    "torchvision": {"stem_pool": "torch", "stride_in_1x1": False},
    "cadene": {"stem_pool": "caffe"},
}
register_resnet = functools.partial(register_model, layouts=RESNET_LAYOUTS)

_R18 = {"block": "basic", "layers": (2, 2, 2, 2)}
_R34 = {"block": "basic", "layers": (3, 4, 6, 3)}
_R50 = {"block": "bottleneck", "layers": (3, 4, 6, 3)}
_R101 = {"block": "bottleneck", "layers": (3, 4, 23, 3)}
_R152 = {"block": "bottleneck", "layers": (3, 8, 36, 3)}
_X32x4 = {"groups": 32, "base_width": 4, "stride_in_1x1": False}


@register_resnet
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2)."""
    return _resnet("resnet18", kwargs, **_R18)


@register_resnet
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return _resnet("resnet34", kwargs, **_R34)


@register_resnet
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50: bottlenecks (3, 4, 6, 3), Caffe layout (3.86 GMACs at 224, paper Table 2)."""
    return _resnet("resnet50", kwargs, **_R50)


@register_resnet
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101: bottlenecks (3, 4, 23, 3), Caffe layout."""
    return _resnet("resnet101", kwargs, **_R101)


@register_resnet
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152: bottlenecks (3, 8, 36, 3), Caffe layout."""
    return _resnet("resnet152", kwargs, **_R152)


@register_resnet
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 (32x4d): bottlenecks (3, 4, 6, 3), 32 groups of width 4, stride on the 3x3."""
    return _resnet("resnext50_32x4d", kwargs, **_R50, **_X32x4)


@register_resnet
def resnext101_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (32x4d): bottlenecks (3, 4, 23, 3), 32 groups of width 4."""
    return _resnet("resnext101_32x4d", kwargs, **_R101, **_X32x4)


@register_resnet
def se_resnet18(**kwargs: Any) -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SE block (r = 16) in every residual branch."""
    return _resnet("se_resnet18", kwargs, **_R18, attn="se")


@register_resnet
def se_resnet34(**kwargs: Any) -> ResNet:
    """SE-ResNet-34."""
    return _resnet("se_resnet34", kwargs, **_R34, attn="se")


@register_resnet
def se_resnet50(**kwargs: Any) -> ResNet:
    """SE-ResNet-50 (paper Table 2): 28,088,024 params, 3.87 GFLOPs at 224."""
    return _resnet("se_resnet50", kwargs, **_R50, attn="se")


@register_resnet
def se_resnet101(**kwargs: Any) -> ResNet:
    """SE-ResNet-101."""
    return _resnet("se_resnet101", kwargs, **_R101, attn="se")


@register_resnet
def se_resnet152(**kwargs: Any) -> ResNet:
    """SE-ResNet-152."""
    return _resnet("se_resnet152", kwargs, **_R152, attn="se")


@register_resnet
def se_resnext50_32x4d(**kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 (32x4d)."""
    return _resnet("se_resnext50_32x4d", kwargs, **_R50, **_X32x4, attn="se")


@register_resnet
def se_resnext101_32x4d(**kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 (32x4d)."""
    return _resnet("se_resnext101_32x4d", kwargs, **_R101, **_X32x4, attn="se")


@register_resnet
def senet154(**kwargs: Any) -> ResNet:
    """SENet-154 (paper appendix): SE-ResNeXt-152 (64x4d) with halved first 1x1 convs, a deep
    3x3 stem (64, 64, 128), 3x3 stride-2 projections and dropout 0.2 before the classifier."""
    arch = dict(_R152, groups=64, base_width=4, stride_in_1x1=False, halve_first_1x1=True)
    stem = dict(stem="deep", stem_width=128, down_kernel_size=3)
    return _resnet("senet154", kwargs, **arch, **stem, drop_rate=0.2, attn="se")


def _attention_variant(name: str, depth: int, arch: dict[str, Any], attn: str) -> None:
    """Register ``name``: ResNet-``depth`` with ``attn`` in every residual branch."""

    def builder(**kwargs: Any) -> ResNet:
        return _resnet(name, kwargs, **arch, attn=attn)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"ResNet-{depth} with {attn.upper()} in every residual branch."
    register_resnet(builder)


def _register_attention_variants(prefix: str, attn: str) -> None:
    """Register ``{prefix}_resnet{18,34,50,101}``."""
    for depth, arch in ((18, _R18), (34, _R34), (50, _R50), (101, _R101)):
        _attention_variant(f"{prefix}_resnet{depth}", depth, arch, attn)


_register_attention_variants("cbam", "cbam")
_register_attention_variants("eca", "eca")
