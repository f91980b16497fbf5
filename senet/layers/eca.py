"""ECA: efficient channel attention by a 1-D conv across channels (Wang et al., CVPR 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn

from senet.layers.activations import ActLayer, create_act
from senet.layers.gated_scale import GatedScale
from senet.layers.pooling import spatial_mean
from senet.layers.validate import check_feature_map, check_positive_int


def eca_kernel_size(channels: int, gamma: int = 2, beta: int = 1) -> int:
    """The ECA paper's adaptive kernel k = |log2(C) / gamma + beta / gamma|, made odd."""
    k = int(abs(math.log2(channels) / gamma + beta / gamma))
    return k if k % 2 else k + 1


class ECA(GatedScale):
    """Efficient Channel Attention (Wang et al., CVPR 2020): AvgPool, Conv1d(k), Sigmoid, Scale.

    No dimensionality reduction: each channel's weight comes from its k neighbours in the pooled
    descriptor, with k chosen from C unless ``kernel_size`` is given.
    """

    squeezes_by_mean = True  # the gate reads x only through its spatial mean: fused training path

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        *,
        gamma: int = 2,
        beta: int = 1,
        gate: ActLayer = "sigmoid",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels, gamma, beta)
        check_positive_int(owner, "kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"{owner}: kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.gate = create_act(gate, owner=owner, arg="gate")

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights (N, C, 1, 1)."""
        check_feature_map(type(self).__name__, self.channels, x)
        return self.excite_pooled(spatial_mean(x))

    def excite_pooled(self, z: torch.Tensor) -> torch.Tensor:
        """The gate from the (N, C, 1, 1) mean: channels become a 1-D sequence for the conv."""
        n = z.shape[0]
        return self.gate(self.conv(z.view(n, 1, self.channels)).view(n, self.channels, 1, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"
