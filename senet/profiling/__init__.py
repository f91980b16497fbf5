"""Params, multiply-adds (the paper's convention) and wall time: ``counter`` (profile, compare_costs),
``op_costs`` (what FlopCounterMode skips), ``timing`` (latency, memory), ``render`` (tables).

``senet.profile(model)`` is ``senet.profiling.counter.profile``.
"""

from senet.profiling.counter import (
    CONVENTION,
    Comparison,
    ModuleCost,
    ProfileError,
    ProfileResult,
    compare_costs,
    profile,
)

__all__ = [
    "CONVENTION",
    "Comparison",
    "ModuleCost",
    "ProfileError",
    "ProfileResult",
    "compare_costs",
    "profile",
]
