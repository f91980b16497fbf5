"""Model specs and their weights: a spec (senet name, ``torchvision:NAME``, ``timm:NAME``) -> a
module (``resolve_model``), and the weights a config or a run folder loads into it.

``senet.builder`` composes these with retrofit and the STN into the one model builder.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.config import ConfigError
from senet.models.factory import create_model
from senet.models.weights import (
    CheckpointError,
    load_converted,
    load_state_dict,
    load_weights,
    read_weights,
    read_weights_metadata,
)

SOURCES = ("senet", "torchvision", "timm")


def _check_listed(library: str, name: str, names: list[str], how_to_list: str) -> None:
    """Refuse a model name ``library`` does not list, with close matches and where to look."""
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown {library} model {name!r}{hint} ({how_to_list} lists them)")


def _senet_model(name: str, **kwargs: Any) -> nn.Module:
    return create_model(name, **kwargs)


def _torchvision_model(name: str, **kwargs: Any) -> nn.Module:
    from torchvision import models

    _check_listed("torchvision", name, models.list_models(), "torchvision.models.list_models()")
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
    _check_listed("timm", name, timm.list_models(), "timm.list_models('*pattern*')")
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


def is_foreign(name: str) -> bool:
    """True for ``torchvision:NAME`` / ``timm:NAME`` model specs (not senet's registry)."""
    return ":" in name


def load_initial_weights(
    model: nn.Module, path: str, *, foreign: bool = False, head: bool = True
) -> None:
    """Load ``model.weights``: a senet run's safetensors, or any layout senet.load_weights reads
    (``foreign``: a torchvision/timm model, whose own state dict layout is loaded as is).
    ``head=False`` keeps the model's classifier (the last Linear layer) as it is."""
    if not Path(path).is_file():
        raise ConfigError(f"model.weights={path} does not exist")
    state, meta = read_weights(path) if path.endswith(".safetensors") else ({}, {})
    try:
        if meta or foreign:
            state = state if meta else load_state_dict(path)
            load_run_state(model, state if head else _with_own_head(model, state), path)
        else:
            load_weights(model, path, classifier=head)
    except (ValueError, RuntimeError, KeyError) as e:
        message = str(e) if isinstance(e, ConfigError) else f"model.weights={path}: {e}"
        head_name = _head_name(model)
        if head and head_name and f"{head_name}.weight" in message:
            message += (
                f"\n  if the classifier ({head_name}) is all that differs, "
                "model.weights_head=false keeps the model's own (fine-tuning on other classes)"
            )
        raise ConfigError(message) from e


def _head_name(model: nn.Module) -> str | None:
    """The module name of the model's classifier: its last Linear layer."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _with_own_head(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the classifier's tensors replaced by the model's own."""
    head_name = _head_name(model)
    if head_name is None:
        raise ConfigError(f"model.weights_head=false: {type(model).__name__} has no Linear head")
    prefix = f"{head_name}."
    kept = {k: v for k, v in state.items() if not k.startswith(prefix)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    return {**kept, **own}


def is_run_weights(path: str) -> bool:
    """True for weights a senet run wrote (safetensors with senet's metadata)."""
    return (
        path.endswith(".safetensors") and Path(path).is_file() and bool(read_weights_metadata(path))
    )


def load_run_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a senet state dict after checking every key and shape (nothing half-loaded)."""
    try:
        load_converted(model, state, check_layout=False)
    except CheckpointError as e:
        raise ConfigError(f"weights {source}: {e}") from None
