"""Dead hidden units: excitation units whose output is the same for every image.

A gate can be constant for two reasons that call for different fixes: its hidden units still
respond but too little to move the gate (weights shrunk by weight decay, or never grown), or they
are dead (a ReLU that never fires), so nothing downstream can vary. With r = 16 a 16-channel block
has a single hidden unit, and one dead unit fixes its gate. The range of each hidden unit's
output over the data tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from senet.layers import CBAM, SCSE

# The activation between the two FCs in senet's modules and timm's SEModule (``act``),
# torchvision's SqueezeExcitation (``activation``) and Cadene's SEModule (``relu``).
_HIDDEN_ACT_ATTRIBUTES = ("act", "activation", "relu")


def hidden_activation_of(module: nn.Module) -> nn.Module | None:
    """The activation applied to ``module``'s hidden (reduced) layer, or None where the channel
    gate has no hidden layer (ECA's 1-D conv, Gather-Excite)."""
    owner = module.channel_gate if isinstance(module, CBAM) else module
    owner = owner.cse if isinstance(owner, SCSE) else owner
    for attribute in _HIDDEN_ACT_ATTRIBUTES:
        sub = getattr(owner, attribute, None)
        if isinstance(sub, nn.Module):
            return sub
    return None


@dataclass
class HiddenRange:
    """Running minimum and maximum of each hidden unit's output over images (and positions)."""

    units: int
    low: torch.Tensor = field(init=False)
    high: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.low = torch.full((self.units,), float("inf"), dtype=torch.float64)
        self.high = torch.full((self.units,), float("-inf"), dtype=torch.float64)

    def add(self, out: torch.Tensor) -> None:
        """Fold in one call's output, (N, units) or (N, units, H, W)."""
        per_unit = out.detach().double().cpu().transpose(0, 1).reshape(self.units, -1)
        self.low = torch.minimum(self.low, per_unit.amin(1))
        self.high = torch.maximum(self.high, per_unit.amax(1))

    def dead(self) -> int:
        """Units whose output never changed: a ReLU that never fired, so its gate input is fixed."""
        return int((self.high == self.low).sum())
