"""Model registry: names -> builder functions, with fnmatch listing and helpful errors."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


def register_model(fn: Builder | None = None, *, name: str | None = None) -> Any:
    """Register a builder under its function name (or ``name``); a duplicate name is an error.

    Use as ``@register_model`` or ``@register_model(name="...")``.
    """

    def wrap(builder: Builder) -> Builder:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered by {_MODELS[key].__module__}")
        _MODELS[key] = builder
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
    """The builder registered as ``name``; an unknown name raises a ValueError with suggestions."""
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} (senet.list_models() lists all "
            f"{len(_MODELS)} names; patterns like list_models('se_*') filter them)"
        ) from None
