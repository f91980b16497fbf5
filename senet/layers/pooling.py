"""Global spatial pooling: the "squeeze" operator of SE-style attention."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers._validate import check_choice

# "none" keeps full resolution: the paper's NoSqueeze ablation (Table 16).
POOL_TYPES = ("avg", "max", "avgmax", "none")


class GlobalPool2d(nn.Module):
    """Global pooling over H and W, keeping dims: (N, C, H, W) -> (N, C, 1, 1).

    ``"avg"`` is the paper's global average pooling (eq. 2), ``"max"`` its Table 11 alternative,
    ``"avgmax"`` the mean of the two, ``"none"`` the identity (no squeeze).
    """

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        self.pool_type = check_choice("GlobalPool2d", "pool_type", pool_type, POOL_TYPES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "avg":
            return x.mean((2, 3), keepdim=True)
        if self.pool_type == "max":
            return x.amax((2, 3), keepdim=True)
        if self.pool_type == "avgmax":
            return 0.5 * (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))
        return x

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"
