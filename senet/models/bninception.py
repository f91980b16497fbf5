"""BN-Inception (Ioffe & Szegedy 2015; paper Table 2): SE-BN-Inception puts SE on the output of
each of the 10 Inception modules 3a-5b, the stride-2 modules 3c and 4e included (paper Fig. 2).

The layout is the authors' Caffe BN-Inception as Cadene's ``bninception`` ports it: ceil-mode
pooling, a max-pool branch in 5b. Cadene's convs carry biases before their BN; senet's do not
(a bias before BN is folded into the BN's running mean when such weights are imported).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers import create_attn
from senet.layers.create_attn import AttnLayer
from senet.models._base import ClassifierNet, check_in_chans
from senet.models._pretrained import family_cfg
from senet.models._twins import register_twins
from senet.models.conv_unit import ConvBnAct, check_attn_kwargs


class ModuleSpec(NamedTuple):
    """Widths of one Inception module; ``b1x1 = 0`` and ``pool = "max_s2"`` mark a stride-2 one."""

    b1x1: int
    b3x3_reduce: int
    b3x3: int
    double_reduce: int
    double: int
    pool: str  # "avg", "max" (stride 1) or "max_s2" (stride 2, no projection)
    pool_proj: int


MODULES: dict[str, ModuleSpec] = {
    "3a": ModuleSpec(64, 64, 64, 64, 96, "avg", 32),
    "3b": ModuleSpec(64, 64, 96, 64, 96, "avg", 64),
    "3c": ModuleSpec(0, 128, 160, 64, 96, "max_s2", 0),
    "4a": ModuleSpec(224, 64, 96, 96, 128, "avg", 128),
    "4b": ModuleSpec(192, 96, 128, 96, 128, "avg", 128),
    "4c": ModuleSpec(160, 128, 160, 128, 160, "avg", 128),
    "4d": ModuleSpec(96, 128, 192, 160, 192, "avg", 128),
    "4e": ModuleSpec(0, 128, 192, 192, 256, "max_s2", 0),
    "5a": ModuleSpec(352, 192, 320, 160, 224, "avg", 128),
    "5b": ModuleSpec(352, 192, 320, 192, 224, "max", 128),
}


class ReductionPool(nn.Module):
    """Pad bottom/right with -inf, MaxPool3x3/2 (ceil mode): the pool branch of 3c and 4e.

    On an even-sized map this is exactly Caffe's ceil-mode pool (its last window is clipped
    either way); on an odd-sized one Caffe's pool comes out one pixel smaller than the stride-2
    convs it is concatenated with, and the padding makes the sizes agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.pad(x, (0, 1, 0, 1), value=float("-inf")))


def _unit(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> ConvBnAct:
    return ConvBnAct(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2)


class InceptionModule(nn.Module):
    """Inception module: Concat(1x1, 1x1-3x3, 1x1-3x3-3x3, Pool-[1x1]), [Attn] on the concat."""

    def __init__(
        self,
        in_chs: int,
        spec: ModuleSpec,
        *,
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        stride = 2 if spec.pool == "max_s2" else 1
        self.branch1x1 = _unit(in_chs, spec.b1x1, 1) if spec.b1x1 else None
        self.branch3x3 = nn.Sequential(
            _unit(in_chs, spec.b3x3_reduce, 1), _unit(spec.b3x3_reduce, spec.b3x3, 3, stride)
        )
        self.branch_double = nn.Sequential(
            _unit(in_chs, spec.double_reduce, 1),
            _unit(spec.double_reduce, spec.double, 3),
            _unit(spec.double, spec.double, 3, stride),
        )
        if spec.pool == "avg":
            pool: nn.Module = nn.AvgPool2d(3, 1, padding=1, ceil_mode=True)
        elif spec.pool == "max":
            pool = nn.MaxPool2d(3, 1, padding=1, ceil_mode=True)
        else:
            pool = ReductionPool()
        proj = [_unit(in_chs, spec.pool_proj, 1)] if spec.pool_proj else []
        self.branch_pool = nn.Sequential(pool, *proj)
        self.out_chs = spec.b1x1 + spec.b3x3 + spec.double + (spec.pool_proj or in_chs)
        self.attn = create_attn(attn, self.out_chs, **(attn_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch3x3(x), self.branch_double(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        x = torch.cat(branches, 1)
        if self.attn is not None:
            x = self.attn(x)
        return x


class BNInception(ClassifierNet):
    """BN-Inception: Conv7x7/2, MaxPool, Conv1x1, Conv3x3, MaxPool, Inception 3a-3c, 4a-4e, 5a-5b
    (each with [Attn] on its output), GlobalAvgPool, [Dropout], FC.

    Args:
        num_classes, in_chans: classifier outputs (0: the 1024-d features); image channels.
        attn, attn_kwargs: attention on every Inception module's output (paper: ``"se"``).
        drop_rate: dropout before the classifier.
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
        self.stem = nn.Sequential()
        self.stem.add_module("conv1_7x7_s2", _unit(in_chans, 64, 7, 2))
        self.stem.add_module("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))
        self.stem.add_module("conv2_3x3_reduce", _unit(64, 64, 1))
        self.stem.add_module("conv2_3x3", _unit(64, 192, 3))
        self.stem.add_module("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))
        in_chs = 192
        for name, spec in MODULES.items():
            module = InceptionModule(in_chs, spec, attn=attn, attn_kwargs=attn_kwargs)
            self.add_module(f"inception_{name}", module)
            in_chs = module.out_chs
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate)
        self._init_weights(zero_init_last=False)
        self.pretrained_cfg = self.make_cfg("")

    def make_cfg(self, name: str) -> dict[str, Any]:
        return family_cfg(name, self.in_chans, first_conv="stem.conv1_7x7_s2.conv")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, 1024, H/32, W/32)."""
        x = self.stem(x)
        for name in MODULES:
            x = getattr(self, f"inception_{name}")(x)
        return x


register_twins(
    BNInception,
    "bninception",
    "BN-Inception (Ioffe & Szegedy 2015; paper Table 2), the Caffe layout of Cadene's port.",
    "SE-BN-Inception (paper Table 2): SE on the output of each of the 10 Inception modules.",
    layouts={"senet": {}, "cadene_bninception": {}},
)
