"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from __future__ import annotations

import warnings
from typing import Any

from senet.layers import attention_names, create_attn
from senet.models import create_model, list_models, load_weights, register_model, with_stn
from senet.models.inference import optimize_for_inference
from senet.profiling import compare_costs, profile
from senet.retrofitting import RetrofitReport, retrofit
from senet.version import __version__

__all__ = [
    "RetrofitReport",
    "__version__",
    "attention_names",
    "compare_costs",
    "create_attn",
    "create_model",
    "list_models",
    "load_weights",
    "optimize_for_inference",
    "profile",
    "register_model",
    "retrofit",
    "with_stn",
]

# Names renamed in 0.2.0 that still work, with a warning, until 0.3.0 (CHANGELOG.md).
_RENAMED = {"compare": "compare_costs"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(
            f"senet.{name} is renamed senet.{new} (senet compare compares run folders); "
            f"the old name goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'senet' has no attribute {name!r}")
