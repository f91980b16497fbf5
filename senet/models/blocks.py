"""Residual blocks that hold one attention module, named ``attn``, at any integration point.

The integration strategies are those of the SE paper's Fig. 5 and Table 15; with ``x`` the block
input, ``F`` the residual branch (its convolutions) and ``S`` the shortcut (identity or
projection), a post-activation block computes:

* ``standard``: ``relu(A(F(x)) + S(x))``: attention on the branch output, before the sum.
* ``pre``: ``relu(F(A(x)) + S(x))``: attention at the head of the residual branch only; the
  identity path bypasses it. (Had it covered both paths, SE-PRE of one block would equal
  SE-POST of the previous one, yet Table 14 reports different errors for the two.)
* ``post``: ``A(relu(F(x) + S(x)))``: attention after the sum and its ReLU.
* ``identity``: ``relu(F(x) + A(S(x)))``: attention on the identity path, in parallel with the
  branch; on a projection shortcut it follows the projection, so it has the block's output width.
* ``conv3x3``: attention inside the bottleneck, right after the 3x3 conv's BN and ReLU (Table 15).

The sum is taken in place on the branch output (no extra activation-sized buffer); every op that
can produce that tensor (BN, conv, senet's gates ``x * s``) keeps its input, not its output, for
the backward pass. An ``attn`` class that returns a tensor autograd saved (e.g. ``torch.sigmoid``
of its input) makes backward raise rather than compute wrong gradients. Gating attention
(``senet.layers.GatedScale``: SE, ECA, CBAM's gates, GE) under ``standard`` or ``identity`` takes
the sum into its scale, ``shortcut + F(x) * s`` in one pass over the activation instead of two.

Pre-activation blocks (BN-ReLU before each conv) place ``A`` the same way; there the pre-activation
is shared with a projection shortcut, so ``pre`` applies ``A`` after it, at the head of the convs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers import create_attn
from senet.layers.create_attn import AttnLayer
from senet.layers.strategies import STRATEGIES
from senet.layers.validate import check_choice


def check_strategy(owner: str, strategy: str, *, bottleneck: bool) -> str:
    """Validate an integration strategy; ``conv3x3`` needs a bottleneck's single 3x3 conv."""
    check_choice(owner, "strategy", strategy, STRATEGIES)
    if strategy == "conv3x3" and not bottleneck:
        raise ValueError(
            f"{owner}: strategy 'conv3x3' puts attention after the middle 3x3 conv of a "
            "bottleneck block (paper Table 15); this network uses basic blocks, whose convs are "
            "both 3x3. Use one of 'standard', 'pre', 'post', 'identity'."
        )
    return strategy


def attn_width(strategy: str, *, in_chs: int, mid_chs: int, out_chs: int) -> int:
    """The number of channels the attention module sees under ``strategy``."""
    return {"pre": in_chs, "conv3x3": mid_chs}.get(strategy, out_chs)


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BN follows)."""
    return nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (a BN follows)."""
    return nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Parameter-free shortcut (ResNet paper's option A): subsample by ``stride``, zero-pad channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.extra = out_chs - in_chs
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Pad the channel dim (F.pad counts dims from the last one: W, H, C).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra}"


class _AttnBlock(nn.Module):
    """Shared attention plumbing: builds ``self.attn`` (or None) and records the strategy."""

    def _init_attn(
        self,
        attn: AttnLayer,
        attn_kwargs: dict[str, Any] | None,
        strategy: str,
        *,
        bottleneck: bool,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
    ) -> None:
        self.strategy = check_strategy(type(self).__name__, strategy, bottleneck=bottleneck)
        width = attn_width(strategy, in_chs=in_chs, mid_chs=mid_chs, out_chs=out_chs)
        self.attn = create_attn(attn, width, **(attn_kwargs or {}))
        # Plain bools so forward's branches are constants to torch.compile and torch.export.
        self._at = {s: self.attn is not None and strategy == s for s in STRATEGIES}

    def _add_shortcut(self, out: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``out + shortcut`` with attention on the branch (standard) or the shortcut (identity)."""
        # Asked at each call, not cached: the attention module may be swapped after construction.
        fuses = getattr(self.attn, "fuses_residual", False) is True
        if fuses and self._at["standard"]:
            return self.attn(out, shortcut)  # shortcut + out * s
        if fuses and self._at["identity"]:
            return self.attn(shortcut, out)  # out + shortcut * s
        if self._at["standard"]:
            out = self.attn(out)
        if self._at["identity"]:
            shortcut = self.attn(shortcut)
        return out.add_(shortcut)

    def extra_repr(self) -> str:
        return f"strategy={self.strategy!r}" if self.attn is not None else ""


class BasicBlock(_AttnBlock):
    """Basic residual block: Conv3x3, BN, ReLU, Conv3x3, BN, [Attn], Add shortcut, ReLU."""

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_chs, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._init_attn(
            attn,
            attn_kwargs,
            strategy,
            bottleneck=False,
            in_chs=in_chs,
            mid_chs=planes,
            out_chs=planes,
        )

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        if self._at["pre"]:
            x = self.attn(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self._add_shortcut(out, shortcut)
        out = self.act2(out)
        if self._at["post"]:
            out = self.attn(out)
        return out


class Bottleneck(_AttnBlock):
    """Bottleneck block: Conv1x1, BN, ReLU, Conv3x3 (grouped), BN, ReLU, Conv1x1, BN, [Attn],
    Add shortcut, ReLU.

    ``stride_in_1x1`` puts the stride on the first 1x1 conv (the authors' Caffe layout) instead of
    the 3x3 conv (torchvision/timm). The 3x3 conv has ``width`` channels; the first 1x1 produces
    ``width_1x1`` (half of ``width`` in SENet-154).
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        halve_first_1x1: bool = False,
        stride_in_1x1: bool = True,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
    ) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        width_1x1 = width // 2 if halve_first_1x1 else width
        out_chs = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_chs, width_1x1, s1)
        self.bn1 = nn.BatchNorm2d(width_1x1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width_1x1, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_chs)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._init_attn(
            attn,
            attn_kwargs,
            strategy,
            bottleneck=True,
            in_chs=in_chs,
            mid_chs=width,
            out_chs=out_chs,
        )

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        if self._at["pre"]:
            x = self.attn(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        if self._at["conv3x3"]:
            out = self.attn(out)
        out = self.bn3(self.conv3(out))
        out = self._add_shortcut(out, shortcut)
        out = self.act3(out)
        if self._at["post"]:
            out = self.attn(out)
        return out


class PreActBasicBlock(_AttnBlock):
    """Pre-activation basic block (WRN): BN, ReLU, Conv3x3, BN, ReLU, [Dropout], Conv3x3, [Attn],
    Add shortcut.

    A projection shortcut (1x1 conv, no BN) takes the shared pre-activation BN-ReLU(x).
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        drop_rate: float = 0.0,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_chs, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self._init_attn(
            attn,
            attn_kwargs,
            strategy,
            bottleneck=False,
            in_chs=in_chs,
            mid_chs=planes,
            out_chs=planes,
        )

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        if self._at["pre"]:
            pre = self.attn(pre)
        out = self.conv1(pre)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        out = self._add_shortcut(out, shortcut)
        if self._at["post"]:
            out = self.attn(out)
        return out


class PreActBottleneck(_AttnBlock):
    """Pre-activation bottleneck (ResNet-164): BN, ReLU, Conv1x1, BN, ReLU, Conv3x3, BN, ReLU,
    Conv1x1, [Attn], Add shortcut.

    The stride sits on the 3x3 conv; a projection shortcut (1x1 conv) takes the shared
    pre-activation BN-ReLU(x), as in He et al.'s identity-mappings code.
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
        strategy: str = "standard",
    ) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_chs, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.act3 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(planes, out_chs)
        self.downsample = downsample
        self._init_attn(
            attn,
            attn_kwargs,
            strategy,
            bottleneck=True,
            in_chs=in_chs,
            mid_chs=planes,
            out_chs=out_chs,
        )

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        if self._at["pre"]:
            pre = self.attn(pre)
        out = self.act2(self.bn2(self.conv1(pre)))
        out = self.conv2(out)
        if self._at["conv3x3"]:
            out = self.attn(out)
        out = self.conv3(self.act3(self.bn3(out)))
        out = self._add_shortcut(out, shortcut)
        if self._at["post"]:
            out = self.attn(out)
        return out
