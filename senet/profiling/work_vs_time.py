"""FLOPs are work, FLOPS are speed: attention's share of the work against its share of the time.

SE's ops (a global pool, two small FCs, a gate, a scale) do about one operation per element
they touch. Their speed is set by the bytes they move, not by their FLOPs, so their share of
the time can be many times their share of the MACs. This module says so in one statement, built
from the counted and measured numbers of a profile.
"""

from __future__ import annotations

from typing import Any

from senet.profiling.op_classes import ATTENTION_PREFIX

# senet.profiling.counter's ProfileResult, read by attribute (counter imports this module).
ProfileResult = Any


def _pct(share: float) -> str:
    return f"{100.0 * share:.2f}%" if share < 0.01 else f"{100.0 * share:.1f}%"


def _intensity(flops: int, bytes_: int) -> float | None:
    return flops / bytes_ if flops and bytes_ else None


def _bound(intensity: float | None, roof: Any) -> str:
    """What the roofline says about ``intensity``: memory- or compute-bound, with the ridge."""
    if roof is None or intensity is None:
        return ""
    side = "memory-bound" if intensity < roof.ridge else "compute-bound"
    return f"; the ridge point here is {roof.ridge:.1f} FLOP/B, so attention is {side}"


def attention_statement(result: ProfileResult) -> str | None:
    """E.g. "attention (16 SqueezeExcite modules): 0.35% of MACs, 4.1% of forward time ..." for
    a result with a by-module breakdown and attention modules; None otherwise."""
    breakdown = result.breakdown
    if breakdown is None or not breakdown.attention_modules:
        return None
    rows = [result.module(name) for name in breakdown.attention_modules]
    kinds = "/".join(sorted({row.type for row in rows}))
    time_share = breakdown.attention_time_share
    text = (
        f"attention ({len(rows)} {kinds} modules): {_pct(result.attention_share)} of MACs, "
        f"{_pct(time_share)} of forward time"
    )
    if result.attention_share and time_share:
        text += f" ({time_share / result.attention_share:.1f}x its share of the MACs)"
    ops = [c for c in breakdown.op_classes if c.name.startswith(ATTENTION_PREFIX)]
    if breakdown.ops_ms:
        text += f", {_pct(sum(c.time_ms for c in ops) / breakdown.ops_ms)} of op time"
    flops, bytes_ = sum(r.flops for r in rows), sum(r.bytes for r in rows)
    intensity, whole = _intensity(flops, bytes_), result.intensity
    if intensity is not None and whole is not None:
        moved = _pct(bytes_ / result.bytes)
        text += (
            f". It moves {moved} of the bytes at {intensity:.2f} FLOP/B (whole model {whole:.1f})"
        )
    text += _bound(intensity, result.roof) + "."
    if any(c.name == ATTENTION_PREFIX + "scale+add" for c in ops):
        text += " Its time and bytes include the residual add fused into its scale."
    return text
