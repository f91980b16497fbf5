"""create_attn: the one map from an attention name to its module class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from senet.layers.branch_scale import BranchScale
from senet.layers.cbam import CBAM, ChannelGate, SpatialGate
from senet.layers.eca import ECA
from senet.layers.gather_excite import GatherExcite
from senet.layers.scse import SCSE
from senet.layers.squeeze_excite import SqueezeExcite

_ATTENTION: dict[str, Callable[..., nn.Module]] = {
    "se": SqueezeExcite,
    "cbam": CBAM,
    "cbam_channel": ChannelGate,
    "cbam_spatial": lambda channels, **kw: SpatialGate(**kw),
    "eca": ECA,
    "ge": GatherExcite,
    "scse": SCSE,
    "scale": BranchScale,  # a fixed scale, no attention: the control for constant SE gates
}

AttnLayer = str | type[nn.Module] | Callable[..., nn.Module] | None


def attention_names() -> list[str]:
    """Names ``create_attn`` accepts (``None`` means no attention)."""
    return sorted(_ATTENTION)


def get_attn(attn: AttnLayer) -> Callable[..., nn.Module] | None:
    """Resolve a name or class to a constructor ``f(channels, **kwargs)``; ``None`` stays None."""
    if attn is None or callable(attn):
        return attn
    if isinstance(attn, str):
        key = attn.lower()
        if key in ("", "none"):
            return None
        if key in _ATTENTION:
            return _ATTENTION[key]
    raise ValueError(
        f"unknown attention {attn!r}; expected one of {', '.join(attention_names())}, "
        "None, or an nn.Module class taking (channels, **kwargs)"
    )


def create_attn(attn: AttnLayer, channels: int, **kwargs: Any) -> nn.Module | None:
    """Build the attention module ``attn`` for ``channels`` channels, or None for no attention.

    ``create_attn("se", 256, reduction=8, gate="tanh")`` is ``SqueezeExcite(256, reduction=8,
    gate="tanh")``; keyword arguments go to the module's constructor unchanged.
    """
    factory = get_attn(attn)
    return None if factory is None else factory(channels, **kwargs)
