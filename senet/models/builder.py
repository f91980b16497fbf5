"""Model specs -> modules: a senet model name, ``torchvision:NAME`` or ``timm:NAME``."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from torch import nn

SOURCES = ("senet", "torchvision", "timm")


def _close_matches(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _senet_model(name: str, **kwargs: Any) -> nn.Module:
    senet = importlib.import_module("senet")
    create_model = getattr(senet, "create_model", None)
    if create_model is not None:
        return create_model(name, **kwargs)
    # Before the model zoo is in place the registry is the only source of names.
    from senet.models._registry import get_model_builder

    return get_model_builder(name)(**kwargs)


def _torchvision_model(name: str, **kwargs: Any) -> nn.Module:
    from torchvision import models

    names = models.list_models()
    if name not in names:
        raise ValueError(
            f"unknown torchvision model {name!r}{_close_matches(name, names)} "
            "(torchvision.models.list_models() lists them)"
        )
    # weights=None: a spec names an architecture; it never downloads weights.
    return models.get_model(name, weights=None, **kwargs)


def _timm_model(name: str, **kwargs: Any) -> nn.Module:
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        raise ImportError(
            f"the model spec 'timm:{name}' needs timm, which is not installed; "
            "install it with `pip install timm` or use a senet or torchvision: model"
        ) from None
    names = timm.list_models()
    if name not in names:
        raise ValueError(
            f"unknown timm model {name!r}{_close_matches(name, names)} "
            "(timm.list_models('*pattern*') lists them)"
        )
    return timm.create_model(name, pretrained=False, **kwargs)


def resolve_model(spec: str, **kwargs: Any) -> nn.Module:
    """Build the model a spec names: ``"se_resnet50"`` (senet), ``"torchvision:resnet50"``,
    ``"timm:seresnet50"``. Keyword arguments go to the builder; no weights are downloaded."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"a model spec is a senet model name, 'torchvision:NAME' or 'timm:NAME', got {spec!r}"
        )
    source, sep, name = spec.strip().partition(":")
    if not sep:
        return _senet_model(source, **kwargs)
    if source not in SOURCES or not name:
        raise ValueError(
            f"bad model spec {spec!r}: expected a senet model name, 'torchvision:NAME' or "
            f"'timm:NAME' (sources: {', '.join(SOURCES)})"
        )
    builders = {"senet": _senet_model, "torchvision": _torchvision_model, "timm": _timm_model}
    return builders[source](name, **kwargs)
