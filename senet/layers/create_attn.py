"""create_attn: the one map from an attention name to its module class."""

from __future__ import annotations

import difflib
import inspect
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


def attn_kwargs_problem(attn: Any, kwargs: dict[str, Any]) -> str | None:
    """Why ``kwargs`` do not fit attention ``attn``'s constructor (an unknown name or argument),
    naming the valid ones; None when they fit or cannot be told without building it."""
    try:
        factory = get_attn(attn)
    except ValueError as e:
        return str(e)
    if factory is None:  # no attention: its arguments are unused (a grid's baseline row)
        return None
    label = attn if isinstance(attn, str) else getattr(attn, "__name__", repr(attn))
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented callable: it decides itself
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    valid = [n for n in list(params)[1:] if params[n].kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"attention {label!r} takes no argument {key!r}{hint}; its arguments: " + (
                ", ".join(valid) or f"none (attentions: {', '.join(attention_names())})"
            )
    return None
