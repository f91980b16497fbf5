"""``train.compile: auto``: compile when the run is long enough to repay the warm-up.

Compiling costs a one-off warm-up (26-31 s for SE-ResNet-20 on a quiet 2-core Xeon, minutes on
a loaded one) and may or may not make a step faster. Before anything is compiled, the bound: at
the largest speed-up seen (``MAX_COMPILE_SPEEDUP`` over the best eager mode), could the run's
steps save more than measuring and warming up cost? Only then are the compiled variants timed
(whole model, each residual stage), and one is chosen when its measured saving over the run
exceeds the warm-up the run will pay. A 3-epoch demo and a 15-epoch study may so differ.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from senet.models.compiling import residual_stages
from senet.models.precision import Mode
from senet.models.race import Clock, NoCandidateRan, RaceResult, Timing
from senet.models.speed_cache import SpeedCache
from senet.train.step_race import Workload, cached_compiled, measure_compiled, unique_labels

# A compiled training step has been seen up to 1.45x faster than bf16 eager and 1.08x than the
# best eager mode (issue 39, SE-ResNet-20); 1.5x bounds what compiling could save unmeasured.
MAX_COMPILE_SPEEDUP = 1.5
# Warm-up estimate before one is measured on this device: 28 s for SE-ResNet-20's 109 leaf
# modules (issue 39); compile time grows with the graph, so per leaf module. Once measured here,
# the device's own rate replaces it (a loaded 2-core CPU took 5x as long).
COMPILE_S_PER_MODULE = 28.0 / 109
# An eval graph (forward only) compiles in about half the time of a training graph (estimate).
EVAL_COMPILE_SHARE = 0.5


def settle_compile(
    workloads: list[Workload],
    base: Mode,
    races: list[RaceResult],
    cache: SpeedCache,
    clock: Clock,
    *,
    same_process: bool,
) -> tuple[str, str, dict[str, list[dict[str, Any]]]]:
    """How to compile ``base`` (``none``, ``model``, ``stages``), why, and the compiled
    timings per workload; ``races`` hold each workload's eager step of ``base``."""
    eager = [r.step_s(base.label) for r in races]
    total_steps = sum(w.steps for w in workloads)
    eager_s = sum(w.steps * (s or 0.0) for w, s in zip(workloads, eager, strict=True))
    cached = [cached_compiled(w, base, cache) for w in workloads]
    if any(c is None for c in cached):
        measuring = sum(_variants(w) * warmup_estimate(w, cache) for w in workloads)
        running = sum(run_warmup(w, warmup_estimate(w, cache), False) for w in workloads)
        bound = eager_s * (1 - 1 / MAX_COMPILE_SPEEDUP)
        if bound <= measuring + running:
            return (
                "none",
                (
                    f"not compiled: the run's {total_steps:,} steps take ~{eager_s:,.0f} s eager; "
                    f"even {MAX_COMPILE_SPEEDUP:g}x faster steps would save ~{bound:,.0f} s, less "
                    f"than compiling costs (~{measuring:,.0f} s to time it, ~{running:,.0f} s for "
                    "the run; estimated)"
                ),
                {},
            )
    try:
        compiled = [
            c or measure_compiled(w, base, cache, clock)
            for w, c in zip(workloads, cached, strict=True)
        ]
    except NoCandidateRan as e:
        return "none", f"not compiled: {e}", {}
    except Exception as e:  # the measuring failed: eager is what runs anywhere
        return (
            "none",
            f"not compiled: timing the compiled step failed ({type(e).__name__}: {e})",
            {},
        )
    for w, c, r in zip(workloads, cached, compiled, strict=True):
        if c is None:
            _remember_rate(w, r, cache)
    fresh = same_process and any(c is None for c in cached)
    how, reason = _best_variant(workloads, base, eager, compiled, fresh)
    rows = (r.to_list() for r in compiled)
    return how, reason, dict(zip(unique_labels(workloads), rows, strict=True))


def _best_variant(
    workloads: list[Workload],
    base: Mode,
    eager: list[float | None],
    compiled: list[RaceResult],
    fresh: bool,
) -> tuple[str, str]:
    """The compiled variant with the largest saving net of the run's warm-up, if any saves."""
    total_steps = sum(w.steps for w in workloads)
    best: tuple[float, str, str] | None = None
    for how in ("model", "stages"):
        label = Mode(base.amp, base.channels_last, how).label  # type: ignore[arg-type]
        timings = [r.get(label) for r in compiled]
        if not all(t is not None and t.status == "timed" for t in timings):
            continue
        saving = sum(
            w.steps * (e - t.step_s)  # type: ignore[operator, union-attr]
            for w, e, t in zip(workloads, eager, timings, strict=True)
        )
        warmup = sum(
            run_warmup(w, _measured_warmup(t), fresh)  # type: ignore[arg-type]
            for w, t in zip(workloads, timings, strict=True)
        )
        what = "compiled whole" if how == "model" else "compiled per residual stage"
        text = (
            f"{what}, a step {_ratio(workloads, eager, timings)} the eager one, saves "
            f"~{saving:,.0f} s over {total_steps:,} steps against ~{warmup:,.0f} s of warm-up"
        )
        if best is None or saving - warmup > best[0]:
            best = (saving - warmup, how, text)
    if best is None:
        return "none", "not compiled: no compiled variant trained a step"
    net, how, text = best
    return (how, text) if net > 0 else ("none", f"not compiled: {text}")


def _ratio(workloads: list[Workload], eager: list[float | None], timings: list[Any]) -> str:
    e = sum(w.steps * s for w, s in zip(workloads, eager, strict=True))  # type: ignore[operator]
    c = sum(w.steps * t.step_s for w, t in zip(workloads, timings, strict=True))
    return f"{e / c:.2f}x as fast as" if c < e else f"{c / e:.2f}x as slow as"


def _variants(w: Workload) -> int:
    return 2 if residual_stages(w.model) else 1


def _measured_warmup(t: Timing) -> float:
    """A compiled candidate's warm-up: its first (compiling) step less a plain one."""
    return max(0.0, (t.first_s or 0.0) - (t.step_s or 0.0))


def warmup_estimate(w: Workload, cache: SpeedCache) -> float:
    """Seconds to compile ``w``'s training step, before it has been measured: the seconds per
    leaf module last measured on this device (the speed cache keeps them), else issue 39's."""
    rate = (cache.load(_device_key(w)) or {}).get("seconds_per_module", COMPILE_S_PER_MODULE)
    return float(rate) * _leaves(w.model)


def _remember_rate(w: Workload, race: RaceResult, cache: SpeedCache) -> None:
    """Keep this device's measured compile seconds per leaf module, for the next estimate."""
    warmups = [_measured_warmup(t) for t in race.timings if t.status == "timed"]
    if warmups:
        rate = sum(warmups) / len(warmups) / _leaves(w.model)
        cache.store(_device_key(w), {"seconds_per_module": rate})


def _device_key(w: Workload) -> dict[str, Any]:
    return {"what": "compile warm-up", **{k: w.key.get(k) for k in ("device", "torch", "threads")}}


def _leaves(model: nn.Module) -> int:
    return max(1, sum(1 for m in model.modules() if next(m.children(), None) is None))


def run_warmup(w: Workload, train_warmup: float, fresh: bool) -> float:
    """What compiling costs the run: its training graph (nothing when ``fresh``: compiled in
    this process while measuring, and reused) and its eval graphs (full, last partial batch)."""
    return (0.0 if fresh else train_warmup) + EVAL_COMPILE_SHARE * train_warmup * w.eval_graphs
