"""Other libraries' models by name: ``torchvision:NAME`` and ``timm:NAME``."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from torch import nn

from senet.models.errors import ModelError

LIBRARIES = ("torchvision", "timm")


def split_name(name: str) -> tuple[str | None, str]:
    """``"timm:seresnet50"`` -> ``("timm", "seresnet50")``; a senet name -> ``(None, name)``."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(
            f"a model name is a senet model name, 'torchvision:NAME' or 'timm:NAME', got {name!r}"
        )
    library, sep, arch = name.strip().partition(":")
    if not sep:
        return None, library
    if library not in LIBRARIES or not arch:
        raise ModelError(
            f"bad model name {name!r}: expected a senet model name, 'torchvision:NAME' or "
            f"'timm:NAME' (libraries: {', '.join(LIBRARIES)})"
        )
    return library, arch


def build_foreign(library: str, arch: str, *, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Build ``arch`` with ``library``'s own builder; ``pretrained`` asks the library for its
    default weights (it downloads them)."""
    if library == "torchvision":
        return _torchvision_model(arch, pretrained, **kwargs)
    return _timm_model(arch, pretrained, **kwargs)


def _check_listed(library: str, name: str, names: list[str], how_to_list: str) -> None:
    """Refuse a model name ``library`` does not list, with close matches and where to look."""
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown {library} model {name!r}{hint} ({how_to_list} lists them)")


def _torchvision_model(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    from torchvision import models

    in_chans = kwargs.pop("in_chans", 3)
    if in_chans != 3:  # torchvision builders take no in_chans
        raise ModelError(
            f"torchvision:{name} reads 3-channel images; use timm:{name} (timm models take "
            "in_chans) or 3-channel data",
            argument="in_chans",
            value=in_chans,
        )
    _check_listed("torchvision", name, models.list_models(), "torchvision.models.list_models()")
    return models.get_model(name, weights="DEFAULT" if pretrained else None, **kwargs)


def _timm_model(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        raise ModelError(
            f"the model name 'timm:{name}' needs timm, which is not installed; "
            "install it with `pip install timm` or use a senet or torchvision: model"
        ) from None
    _check_listed("timm", name, timm.list_models(), "timm.list_models('*pattern*')")
    return timm.create_model(name, pretrained=pretrained, **kwargs)
