"""Register a model and its SE twin (``se_<name>``) from one architecture description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from senet.models._base import build
from senet.models._registry import SENET_LAYOUT, register_model


def _variant(
    cls: type[nn.Module], name: str, doc: str, arch: dict[str, Any], layouts: Mapping
) -> None:
    def builder(**kwargs: Any) -> nn.Module:
        model = build(cls, arch, kwargs)
        # The name picks the known public weights (if any) for pretrained_cfg["url"].
        model.pretrained_cfg = {**model.make_cfg(name), "architecture": name}
        return model

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(builder, layouts=layouts)


def register_twins(
    cls: type[nn.Module],
    name: str,
    doc: str,
    se_doc: str,
    *,
    layouts: Mapping[str, Mapping[str, Any]] = SENET_LAYOUT,
    **arch: Any,
) -> None:
    """Register ``name`` (no attention) and ``se_<name>`` (``attn="se"``, the paper's r = 16),
    both reading the checkpoint ``layouts`` (see ``register_model``)."""
    _variant(cls, name, doc, arch, layouts)
    _variant(cls, f"se_{name}", se_doc, {**arch, "attn": "se"}, layouts)
