"""Gather-Excite: context gathered over a spatial extent, redistributed as a gate (Hu et al.)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers.activations import ActLayer, create_act
from senet.layers.gated_scale import GatedScale
from senet.layers.pooling import spatial_mean
from senet.layers.squeeze_excite import hidden_width
from senet.layers.validate import check_feature_map, check_positive_int


class GatherExcite(GatedScale):
    """Gather-Excite (Hu et al., NeurIPS 2018): Gather, [MLP], Interpolate, Sigmoid, Scale.

    Variants of the paper:
      - GE-theta-minus (``extra_params=False``): parameter-free gather by average pooling over
        ``extent`` x ``extent`` neighbourhoods (``extent=0``: the whole map, as in SE).
      - GE-theta (``extra_params=True``): gather by log2(extent) stride-2 depthwise 3x3 convs with
        BN; the global extent uses one depthwise conv the size of the map (``feat_size``).
      - GE-theta-plus (``use_mlp=True``): an SE-style MLP (1x1 convs) after the gather.
    The gathered map is resized back to H x W with nearest-neighbour interpolation.
    """

    def __init__(
        self,
        channels: int,
        extent: int = 0,
        *,
        extra_params: bool = False,
        use_mlp: bool = False,
        reduction: int = 16,
        feat_size: int | None = None,
        act_layer: ActLayer = "relu",
        gate: ActLayer = "sigmoid",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        if extent != 0 and (extent < 2 or extent & (extent - 1)):
            raise ValueError(
                f"{owner}: extent must be 0 (global) or a power of two >= 2, got {extent!r}"
            )
        self.extent = extent
        if extra_params:
            self.gather = self._conv_gather(channels, extent, feat_size, owner)
        else:
            self.gather = nn.Identity()  # pooling is parameter-free; done in excitation()
        self.extra_params = extra_params
        if use_mlp:
            hidden = hidden_width(channels, check_positive_int(owner, "reduction", reduction))
            self.mlp = nn.Sequential(
                nn.Conv2d(channels, hidden, 1),
                create_act(act_layer, owner=owner, arg="act_layer"),
                nn.Conv2d(hidden, channels, 1),
            )
        else:
            self.mlp = nn.Identity()
        self.gate = create_act(gate, owner=owner, arg="gate")

    @staticmethod
    def _conv_gather(channels: int, extent: int, feat_size: int | None, owner: str) -> nn.Module:
        def dw_conv(kernel: int, stride: int, padding: int) -> list[nn.Module]:
            return [
                nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False),
                nn.BatchNorm2d(channels),
            ]

        if extent == 0:
            if feat_size is None:
                raise ValueError(
                    f"{owner}: the global GE-theta gather is a depthwise conv the size of the "
                    "feature map; pass feat_size=H (square maps) or use extent >= 2"
                )
            return nn.Sequential(*dw_conv(check_positive_int(owner, "feat_size", feat_size), 1, 0))
        layers: list[nn.Module] = []
        for i in range(int(math.log2(extent))):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers += dw_conv(3, 2, 1)
        return nn.Sequential(*layers)

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Weights (N, C, 1, 1) for the global extent, else (N, C, H, W)."""
        check_feature_map(type(self).__name__, self.channels, x)
        if self.extra_params:
            g = self.gather(x)
        elif self.extent == 0:
            g = spatial_mean(x)
        else:
            e = self.extent
            g = F.avg_pool2d(x, 2 * e - 1, stride=e, padding=e - 1, count_include_pad=False)
        g = self.mlp(g)
        if g.shape[-2:] != (1, 1):
            g = F.interpolate(g, size=x.shape[-2:], mode="nearest")
        return self.gate(g)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, extent={self.extent}, extra_params={self.extra_params}"
