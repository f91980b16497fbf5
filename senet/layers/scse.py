"""scSE: concurrent spatial and channel squeeze-and-excitation (Roy et al., MICCAI 2018)."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.gated_scale import GatedScale
from senet.layers.squeeze_excite import SqueezeExcite
from senet.layers.validate import check_choice, check_feature_map, check_positive_int


class SpatialSE(GatedScale):
    """sSE: 1x1 Conv to one channel, Sigmoid, Scale: a per-pixel gate shared by all channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_positive_int(type(self).__name__, "channels", channels)
        self.conv = nn.Conv2d(channels, 1, 1)
        self.gate = nn.Sigmoid()

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(type(self).__name__, self.channels, x)
        return self.gate(self.conv(x))


class SCSE(nn.Module):
    """Concurrent spatial and channel SE (Roy et al., 2018): cSE(x) and sSE(x), combined.

    ``combine="add"`` is the paper's main variant; ``"max"`` is its element-wise max-out.
    Meant for dense prediction (segmentation), where per-pixel gates matter.
    """

    def __init__(self, channels: int, reduction: int = 16, *, combine: str = "add") -> None:
        super().__init__()
        self.channels = channels
        self.combine = check_choice(type(self).__name__, "combine", combine, ("add", "max"))
        self.cse = SqueezeExcite(channels, reduction)
        self.sse = SpatialSE(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel, spatial = self.cse(x), self.sse(x)
        if self.combine == "add":
            return channel + spatial
        return torch.maximum(channel, spatial)
