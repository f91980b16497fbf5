"""The scale step shared by gating attention: ``x * s``, fused with a residual add when given."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.fused_scale import fusable, squeeze_and_scale
from senet.layers.validate import check_feature_map


class GatedScale(nn.Module):
    """Base for attention that rescales its input by a gate s = ``excitation(x)``: Gate, Scale.

    ``forward(x)`` is ``x * s`` (the SE paper's F_scale, eq. 4). ``forward(x, residual)`` is
    ``residual + x * s`` in one pass over the activation (``torch.addcmul``) instead of two, which
    is what a residual block does next; the blocks of ``senet.models`` call it that way. Both
    return a new tensor and keep ``x``, not the output, for backward, so the caller may add to or
    rectify the result in place.
    """

    #: Blocks check this to hand over their residual add.
    fuses_residual = True

    #: True where the gate depends on ``x`` only through its spatial mean, computed by
    #: ``excite_pooled``: training then takes the fused squeeze-and-scale backward
    #: (``senet.layers.fused_scale``), which reads each activation fewer times.
    squeezes_by_mean: bool = False
    channels: int

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The gate s, broadcastable to ``x`` and of ``x``'s dtype."""
        raise NotImplementedError

    def excite_pooled(self, z: torch.Tensor) -> torch.Tensor:
        """The gate s from the pooled descriptor z (N, C, 1, 1), where ``squeezes_by_mean``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.squeezes_by_mean and fusable(x):
            check_feature_map(type(self).__name__, self.channels, x)
            return squeeze_and_scale(x, self.excite_pooled, residual)
        s = self.excitation(x).to(x.dtype)  # a float32 gate would promote the whole map
        if residual is None:
            return x * s
        return torch.addcmul(residual, x, s)
