"""ConvBnAct: the conv unit the VGG, Inception, MobileNet and ShuffleNet families are built from."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from senet.layers import create_attn
from senet.layers.create_attn import AttnLayer

Size = int | tuple[int, int]
_ACTS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),  # MobileNet v1 as released (TF, timm)
    None: nn.Identity,
}


class ConvBnAct(nn.Module):
    """Conv (no bias), BN, [ReLU or ReLU6], [Attn]: one convolutional unit; ``attn`` sees its output."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: Size,
        *,
        stride: int = 1,
        padding: Size = 0,
        groups: int = 1,
        eps: float = 1e-5,
        act: str | None = "relu",
        attn: AttnLayer = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        if act not in _ACTS:
            raise ValueError(f"ConvBnAct: act must be one of {list(_ACTS)}, got {act!r}")
        self.act = _ACTS[act]()
        self.attn = create_attn(attn, out_chs, **(attn_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        if self.attn is not None:
            x = self.attn(x)
        return x


def check_attn_kwargs(owner: str, attn: AttnLayer, attn_kwargs: dict[str, Any] | None) -> None:
    """attn_kwargs without an attention is a mistake worth saying."""
    if attn is None and attn_kwargs:
        raise ValueError(
            f"{owner}: attn_kwargs {attn_kwargs!r} given but attn is None; "
            "name the attention (attn='se') or drop attn_kwargs"
        )
