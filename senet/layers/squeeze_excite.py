"""The Squeeze-and-Excitation block with every knob of the paper's ablations."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers.activations import ActLayer, create_act
from senet.layers.gated_scale import GatedScale
from senet.layers.pooling import GlobalPool2d
from senet.layers.validate import check_feature_map, check_positive_int


def autocast_off(device_type: str) -> contextlib.AbstractContextManager[object]:
    """A context with autocast disabled on ``device_type`` if it is on (no-op elsewhere, e.g. meta)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know
        enabled = False
    return torch.autocast(device_type, enabled=False) if enabled else contextlib.nullcontext()


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of ``value``.

    The MobileNet rounding rule, used by timm and torchvision for SE widths.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def hidden_width(
    channels: int, reduction: int, min_channels: int = 1, divisor: int | None = None
) -> int:
    """The excitation bottleneck width ``C / r`` of the paper, floored at ``min_channels``."""
    if divisor is None:
        return max(min_channels, channels // reduction)
    return make_divisible(channels / reduction, divisor, min_value=max(min_channels, divisor))


class SqueezeExcite(GatedScale):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018): Pool, FC, Act, FC, Gate, Scale.

    With the paper's symbols (Sec. 3): ``squeeze`` is F_sq (eq. 2), ``fc1``/``fc2`` are W1 (C/r x C)
    and W2 (C x C/r), ``act`` is delta and ``gate`` is sigma in eq. 3, and the output is
    F_scale(u, s) = s * u (eq. 4). The FC layers are 1x1 convolutions, the layout of the Caffe
    models, timm and torchvision, so public checkpoints load directly.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the excitation bottleneck ratio (paper default 16, Table 10 ablation).
        squeeze: ``"avg"`` (paper), ``"max"``, ``"avgmax"`` (Table 11), or ``"none"`` for the
            NoSqueeze ablation (Table 16): excitation by 1x1 convs at full resolution.
        act_layer: delta, the activation between the FC layers (name or module class).
        gate: sigma, the gating function: ``"sigmoid"`` (paper), ``"hard_sigmoid"``, ``"clamp"``
            (``clamp(y, 0, 1)``), ``"tanh"``, ``"relu"`` (Table 12), or a module class.
        bias: whether the two FC layers have biases (the Caffe models do; the ablations did not).
        min_channels: floor on the hidden width; the default 1 keeps the paper's widths exact.
        divisor: round the hidden width to a multiple of this (MobileNet-style), if given.
        hidden_channels: set the hidden width directly, overriding ``reduction``.

    The excitation vector s (N, C, 1, 1) — (N, C, H, W) with ``squeeze="none"`` — is returned by
    :meth:`excitation` and is the output of the ``gate`` submodule, so a forward hook on
    ``module.gate`` records it. ``forward(x, residual)`` adds a residual in the same pass as the
    scale (see :class:`GatedScale`).

    Speed: on pooled descriptors the two FCs run as matrix products on (N, C) in the weights'
    dtype, outside autocast: under bf16 autocast that saves casting the FC weights every call
    and oneDNN's fixed cost for a 1x1 convolution on a 1x1 map; s is cast to ``x``'s dtype once.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        squeeze: str = "avg",
        act_layer: ActLayer = "relu",
        gate: ActLayer = "sigmoid",
        bias: bool = True,
        min_channels: int = 1,
        divisor: int | None = None,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        self.reduction = check_positive_int(owner, "reduction", reduction)
        check_positive_int(owner, "min_channels", min_channels)
        if divisor is not None:
            check_positive_int(owner, "divisor", divisor)
        if hidden_channels is None:
            hidden_channels = hidden_width(channels, reduction, min_channels, divisor)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.squeeze = GlobalPool2d(squeeze, owner=owner, arg="squeeze")
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1, bias=bias)
        self.act = create_act(act_layer, owner=owner, arg="act_layer")
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1, bias=bias)
        self.gate = create_act(gate, owner=owner, arg="gate")

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights s = sigma(W2 delta(W1 z)), z = F_sq(x), in ``x``'s dtype."""
        check_feature_map(type(self).__name__, self.channels, x)
        z = self.squeeze(x)
        if self.squeeze.pool_type == "none":  # NoSqueeze: full-resolution 1x1 convs
            return self.gate(self.fc2(self.act(self.fc1(z))))
        return self.excite_pooled(z).to(x.dtype)

    @property
    def squeezes_by_mean(self) -> bool:  # type: ignore[override]
        return self.squeeze.pool_type == "avg"

    def excite_pooled(self, z: torch.Tensor) -> torch.Tensor:
        """The FCs on the (N, C, 1, 1) descriptor as (N, C) matrix products, autocast off."""
        n = z.shape[0]
        weight = self.fc1.weight
        with autocast_off(z.device.type):
            h = F.linear(z.view(n, -1).to(weight.dtype), weight.flatten(1), self.fc1.bias)
            y = F.linear(self.act(h), self.fc2.weight.flatten(1), self.fc2.bias)
            return self.gate(y.view(n, self.channels, 1, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"
