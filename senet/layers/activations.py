"""Activations and gates by name: the one string -> module map used by every layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from senet.layers.validate import check_choice


class Clamp01(nn.Module):
    """Gate ``clamp(x, 0, 1)``: the piecewise-linear sigmoid some SE ports use."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


# Table 12 of the SE paper compares sigmoid, tanh and ReLU as the excitation gate.
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "clamp": Clamp01,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "hard_swish": nn.Hardswish,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}

ActLayer = str | type[nn.Module] | Callable[[], nn.Module]


def activation_names() -> list[str]:
    """Names accepted wherever an activation or gate is given as a string."""
    return sorted(_ACTIVATIONS)


def create_act(act: ActLayer, *, owner: str = "create_act", arg: str = "act_layer") -> nn.Module:
    """Build an activation from a name (``"relu"``, ``"sigmoid"``, ...) or a module class."""
    if isinstance(act, str):
        return _ACTIVATIONS[check_choice(owner, arg, act, activation_names())]()
    module = act()
    if not isinstance(module, nn.Module):
        raise TypeError(f"{owner}: {arg} must build an nn.Module, got {type(module).__name__}")
    return module
