"""Params, multiply-adds (the paper's convention) and wall time: ``counter`` (profile, compare),
``op_costs`` (what FlopCounterMode skips), ``timing`` (latency, memory), ``render`` (tables).

The package is callable: ``senet.profile(model)`` is ``senet.profile.counter.profile``.
"""

from senet._callable_module import make_callable
from senet.profile.counter import (
    CONVENTION,
    Comparison,
    ModuleCost,
    ProfileError,
    ProfileResult,
    compare,
    profile,
)

__all__ = [
    "CONVENTION",
    "Comparison",
    "ModuleCost",
    "ProfileError",
    "ProfileResult",
    "compare",
    "profile",
]

make_callable(__name__, profile)
