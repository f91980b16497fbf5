"""Params, multiply-adds (the paper's convention), bytes moved and wall time: ``counter``
(profile, compare_costs), ``op_costs`` (what FlopCounterMode skips), ``bytes_moved`` (what each
op reads and writes), ``timing`` (latency, memory), ``breakdown`` (time per module and per op
class), ``roofline`` (this machine's peak compute and bandwidth), ``work_vs_time`` (attention's
share of the work against its share of the time), ``render`` (tables).

``senet.profile(model)`` is ``senet.profiling.counter.profile``.
"""

from senet.profiling.breakdown import Breakdown, OpClassCost
from senet.profiling.counter import (
    CONVENTION,
    Comparison,
    ModuleCost,
    ProfileError,
    ProfileResult,
    compare_costs,
    profile,
)
from senet.profiling.roofline import Roof, measure_roof, memory_bandwidth, peak_compute
from senet.profiling.work_vs_time import attention_statement

__all__ = [
    "CONVENTION",
    "Breakdown",
    "Comparison",
    "ModuleCost",
    "OpClassCost",
    "ProfileError",
    "ProfileResult",
    "Roof",
    "attention_statement",
    "compare_costs",
    "measure_roof",
    "memory_bandwidth",
    "peak_compute",
    "profile",
]
