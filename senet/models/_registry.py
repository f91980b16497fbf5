"""Model registry: names -> builder functions and the checkpoint layouts each family reads."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from torch import nn

from senet.models.errors import ModelError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_LAYOUTS: dict[str, Mapping[str, Mapping[str, Any]]] = {}

# senet's own key layout, read by every family.
SENET_LAYOUT: Mapping[str, Mapping[str, Any]] = MappingProxyType({"senet": {}})

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


def register_model(
    fn: Builder | None = None,
    *,
    name: str | None = None,
    layouts: Mapping[str, Mapping[str, Any]] = SENET_LAYOUT,
) -> Any:
    """Register a builder under its function name (or ``name``); a duplicate name is an error.

    ``layouts``: the checkpoint key layouts the family reads (``senet.models.weights``), each
    with the builder arguments that reproduce the architecture the layout was trained with
    (e.g. torchvision ResNets: ``{"stride_in_1x1": False, "stem_pool": "torch"}``).
    Use as ``@register_model``, ``@register_model(name=...)`` or ``register_model(fn, ...)``.
    """

    def wrap(builder: Builder) -> Builder:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered by {_MODELS[key].__module__}")
        _MODELS[key] = builder
        _LAYOUTS[key] = layouts
        return builder

    return wrap(fn) if fn is not None else wrap


def list_models(
    pattern: str | Iterable[str] = "*", *, exclude: str | Iterable[str] = ()
) -> list[str]:
    """Sorted registered names matching any fnmatch ``pattern`` and none of ``exclude``."""
    include = [pattern] if isinstance(pattern, str) else list(pattern)
    excluded = [exclude] if isinstance(exclude, str) else list(exclude)
    return sorted(
        key
        for key in _MODELS
        if any(fnmatch.fnmatchcase(key, p) for p in include)
        and not any(fnmatch.fnmatchcase(key, p) for p in excluded)
    )


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``; an unknown name raises a ModelError with suggestions."""
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"unknown model {name!r}{hint} (senet.list_models() lists all "
            f"{len(_MODELS)} names; patterns like list_models('se_*') filter them)"
        ) from None


def checkpoint_layouts(name: str) -> Mapping[str, Mapping[str, Any]]:
    """The checkpoint layouts model ``name`` reads, each with its builder arguments."""
    get_model_builder(name)  # the unknown-name error
    return _LAYOUTS.get(name, SENET_LAYOUT)
