"""BranchScale: a residual branch times a fixed constant, the control for SE with constant gates."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.validate import check_feature_map, check_finite_number, check_positive_int


class BranchScale(nn.Module):
    """Multiply a residual branch by a fixed ``value``: no squeeze, no excitation, no parameters.

    Under weight decay SE's gates can collapse to a constant near 0.5 (``senet analyze`` reports
    them saturated), which leaves a network whose residual branches are merely scaled down, as
    Fixup and SkipInit do on purpose. Training with ``attn="scale"`` in place of ``attn="se"``
    asks whether SE's accuracy comes from its attention or from that scaling.
    """

    # Blocks hand the shortcut over as attn(x, residual): one fused add, as SE's scale does.
    fuses_residual = True

    def __init__(self, channels: int, value: float = 0.5) -> None:
        super().__init__()
        self.channels = check_positive_int("BranchScale", "channels", channels)
        self.value = check_finite_number("BranchScale", "value", value)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``x * value``, or ``residual + x * value`` when the block passes its shortcut."""
        check_feature_map("BranchScale", self.channels, x)
        if residual is None:
            return x * self.value
        return torch.add(residual, x, alpha=self.value)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, value={self.value}"
