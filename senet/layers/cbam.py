"""CBAM: channel attention followed by spatial attention (Woo et al., ECCV 2018)."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.activations import ActLayer, create_act
from senet.layers.gated_scale import GatedScale
from senet.layers.pooling import spatial_mean
from senet.layers.squeeze_excite import hidden_width
from senet.layers.validate import check_feature_map, check_positive_int


class ChannelGate(GatedScale):
    """CBAM channel attention: AvgPool and MaxPool, shared MLP (FC, Act, FC), Sum, Sigmoid, Scale.

    Differs from SE in feeding both pooled descriptors through the one MLP and summing them.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        act_layer: ActLayer = "relu",
        gate: ActLayer = "sigmoid",
        bias: bool = True,
        min_channels: int = 1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        check_positive_int(owner, "reduction", reduction)
        check_positive_int(owner, "min_channels", min_channels)
        hidden = hidden_width(channels, reduction, min_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = create_act(act_layer, owner=owner, arg="act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = create_act(gate, owner=owner, arg="gate")

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights (N, C, 1, 1)."""
        check_feature_map(type(self).__name__, self.channels, x)
        avg = self.fc2(self.act(self.fc1(spatial_mean(x))))
        mx = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))
        return self.gate(avg + mx)


class SpatialGate(GatedScale):
    """CBAM spatial attention: channel-wise Max and Mean, Concat, KxK Conv, BN, Sigmoid, Scale."""

    def __init__(
        self,
        kernel_size: int = 7,
        *,
        norm: bool = True,
        gate: ActLayer = "sigmoid",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive_int(owner, "kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"{owner}: kernel_size must be odd to keep H x W, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not norm)
        # The CBAM reference code normalises the 1-channel map before the sigmoid.
        self.bn = nn.BatchNorm2d(1) if norm else nn.Identity()
        self.gate = create_act(gate, owner=owner, arg="gate")

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial weights (N, 1, H, W)."""
        if x.dim() != 4:
            raise ValueError(
                f"SpatialGate expects a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}"
            )
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return self.gate(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): ChannelGate, SpatialGate."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        *,
        act_layer: ActLayer = "relu",
        gate: ActLayer = "sigmoid",
        bias: bool = True,
        min_channels: int = 1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.channel_gate = ChannelGate(
            channels,
            reduction,
            act_layer=act_layer,
            gate=gate,
            bias=bias,
            min_channels=min_channels,
        )
        self.spatial_gate = SpatialGate(kernel_size, norm=norm, gate=gate)

    fuses_residual = True  # the spatial gate's scale takes the block's residual add

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x), residual)
