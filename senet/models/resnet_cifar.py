"""CIFAR ResNets of the SE paper's Tables 4-5: ResNet-20..110, pre-activation ResNet-164, WRN-16-8.

Each takes 32x32 images (any size works: pooling is adaptive) through a 3x3 stem and three stages
of 16, 32 and 64 base channels at strides 1, 2, 2. Stages are numbered 2-4 (``layer1``-``layer3``)
so that ``attn_stages`` reads as in the paper's Table 13 for ImageNet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from senet.layers.create_attn import AttnLayer
from senet.layers.validate import check_choice, check_positive_int
from senet.models._base import ClassifierNet, build, check_attn_stages, check_in_chans
from senet.models._pretrained import cifar_cfg
from senet.models._registry import register_model
from senet.models.blocks import (
    BasicBlock,
    PadShortcut,
    PreActBasicBlock,
    PreActBottleneck,
    check_strategy,
)

STAGES: tuple[int, ...] = (2, 3, 4)
# block name -> (class, layers per block, non-block layers), so depth = per_block * n + extra.
BLOCKS = {
    "basic": (BasicBlock, 6, 2),  # He et al. 2016a: 6n + 2
    "preact_bottleneck": (PreActBottleneck, 9, 2),  # He et al. 2016b: 9n + 2
    "preact_basic": (PreActBasicBlock, 6, 4),  # Zagoruyko & Komodakis 2016: 6n + 4
}
SHORTCUTS = ("pad", "conv")


class CifarResNet(ClassifierNet):
    """CIFAR ResNet / pre-activation ResNet / Wide ResNet: Conv3x3 stem, 3 stages of residual
    blocks, [BN, ReLU for pre-activation nets], GlobalAvgPool, [Dropout], FC.

    Args:
        depth: total weighted layers: 6n+2 (``basic``), 9n+2 (``preact_bottleneck``), 6n+4
            (``preact_basic``), with n blocks per stage.
        block: ``"basic"`` (post-activation, ResNet-20..110), ``"preact_bottleneck"``
            (ResNet-164) or ``"preact_basic"`` (WRN).
        widen_factor: k, the channel multiplier of a Wide ResNet (stage widths 16k, 32k, 64k).
        shortcut: ``"pad"`` (option A of the ResNet paper: subsample and zero-pad channels, no
            parameters) or ``"conv"`` (1x1 conv projection; with BN in post-activation blocks).
        num_classes, in_chans: classifier outputs (0: features only); image channels (1 for
            Fashion-MNIST).
        attn, attn_kwargs, strategy, zero_init_last: as for ``senet.models.resnet.ResNet``.
        attn_stages: the stages (subset of 2-4) that get attention.
        drop_rate: dropout before the classifier.
        block_drop_rate: dropout between the two convs of a WRN block.
    """

    def __init__(
        self,
        *,
        depth: int = 20,
        block: str = "basic",
        widen_factor: int = 1,
        shortcut: str = "pad",
        num_classes: int = 10,
        in_chans: int = 3,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
        attn_stages: Iterable[int] = STAGES,
        drop_rate: float = 0.0,
        block_drop_rate: float = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        block_cls, per_block, extra = BLOCKS[check_choice(owner, "block", block, BLOCKS)]
        check_positive_int(owner, "depth", depth)
        if (depth - extra) % per_block or depth <= extra:
            raise ValueError(
                f"{owner}: a {block!r} network has depth {per_block}n+{extra} "
                f"(e.g. {per_block * 3 + extra}), got {depth}"
            )
        n = (depth - extra) // per_block
        self.in_chans = check_in_chans(owner, in_chans)
        check_positive_int(owner, "widen_factor", widen_factor)
        check_choice(owner, "shortcut", shortcut, SHORTCUTS)
        self.strategy = check_strategy(owner, strategy, bottleneck=block == "preact_bottleneck")
        self.attn_stages = check_attn_stages(owner, attn_stages, STAGES)
        if attn is None and attn_kwargs:
            raise ValueError(
                f"{owner}: attn_kwargs {attn_kwargs!r} given but attn is None; "
                "name the attention (attn='se') or drop attn_kwargs"
            )
        if block_drop_rate and block != "preact_basic":
            raise ValueError(f"{owner}: block_drop_rate applies to 'preact_basic' (WRN) blocks")
        self.depth = depth
        self.block = block
        preact = block.startswith("preact")

        self.stem = nn.Sequential()
        self.stem.add_module("conv1", nn.Conv2d(in_chans, 16, 3, padding=1, bias=False))
        if not preact:  # pre-activation nets normalise at the head of the first block instead
            self.stem.add_module("bn1", nn.BatchNorm2d(16))
            self.stem.add_module("act1", nn.ReLU(inplace=True))
        in_chs = 16
        for index, stage in enumerate(STAGES):
            planes = 16 * 2**index * widen_factor
            out_chs = planes * block_cls.expansion
            blocks = []
            for j in range(n):
                stride = 2 if index > 0 and j == 0 else 1
                kw: dict[str, Any] = (
                    {"drop_rate": block_drop_rate} if block == "preact_basic" else {}
                )
                blocks.append(
                    block_cls(
                        in_chs,
                        planes,
                        stride=stride,
                        downsample=self._make_shortcut(in_chs, out_chs, stride, shortcut, preact),
                        attn=attn if stage in self.attn_stages else None,
                        attn_kwargs=attn_kwargs if stage in self.attn_stages else None,
                        strategy=strategy,
                        **kw,
                    )
                )
                in_chs = out_chs
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        # Pre-activation nets end with the BN-ReLU that their last block leaves out.
        self.final_norm = nn.BatchNorm2d(in_chs) if preact else nn.Identity()
        self.final_act = nn.ReLU(inplace=True) if preact else nn.Identity()
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last)
        self.pretrained_cfg = cifar_cfg(in_chans)

    @staticmethod
    def _make_shortcut(
        in_chs: int, out_chs: int, stride: int, kind: str, preact: bool
    ) -> nn.Module | None:
        """Identity, option-A padding, or a 1x1 projection (Conv, BN; Conv alone if preact)."""
        if stride == 1 and in_chs == out_chs:
            return None
        if kind == "pad":
            return PadShortcut(in_chs, out_chs, stride)
        conv = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)
        return nn.Sequential(conv) if preact else nn.Sequential(conv, nn.BatchNorm2d(out_chs))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/4, W/4)."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.final_act(self.final_norm(x))


def _cifar(kwargs: dict[str, Any], **arch: Any) -> CifarResNet:
    return build(CifarResNet, arch, kwargs)


def _variant(name: str, doc: str, arch: dict[str, Any]) -> None:
    def builder(**kwargs: Any) -> CifarResNet:
        return _cifar(kwargs, **arch)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(builder)


def _register(name: str, doc: str, **arch: Any) -> None:
    """Register ``name`` and its SE twin ``se_{name}`` (SE, r = 16, in every residual branch)."""
    _variant(name, doc, arch)
    _variant(f"se_{name}", f"SE-{doc}", {**arch, "attn": "se"})


for _depth in (20, 32, 44, 56, 110):
    _register(
        f"resnet{_depth}_cifar",
        f"ResNet-{_depth} for CIFAR (He et al. 2016): basic blocks, option-A shortcuts.",
        depth=_depth,
        block="basic",
        shortcut="pad",
    )
_register(
    "resnet164_cifar",
    "ResNet-164 for CIFAR (He et al. 2016, identity mappings): pre-activation bottlenecks.",
    depth=164,
    block="preact_bottleneck",
    shortcut="conv",
)
_register(
    "wrn16_8_cifar",
    "WRN-16-8 for CIFAR (Zagoruyko & Komodakis 2016): pre-activation basic blocks, k = 8.",
    depth=16,
    block="preact_basic",
    widen_factor=8,
    shortcut="conv",
)
