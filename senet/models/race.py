"""Timing candidate modes against each other on the real workload, and the table of the result.

``race`` prepares each candidate, runs its first steps one candidate at a time (dropping at once
one far slower than the best so far), then times the survivors in interleaved rounds, so a drift
in machine load hits every candidate alike; each candidate's figure is the median of its rounds.
The clock is injectable: tests time fake steps with a fake clock, never the machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# One step of a candidate; ``True``: on the probe batch (a slice of the batch, see ``race``).
StepFn = Callable[[bool], None]
Clock = Callable[[], float]

DROP_RATIO = 3.0  # a first step this many times the best so far drops the candidate at once


@dataclass
class Candidate:
    """A mode to time: ``build`` prepares it (copies, converts) and returns its step.

    ``probe``: run one step on a slice of the batch before the first full one, so a candidate
    that is many times slower (an emulated dtype) is dropped after a fraction of a step. Off for
    compiled candidates: a second input shape would compile them twice.
    """

    name: str
    build: Callable[[], StepFn]
    probe: bool = True


@dataclass
class Timing:
    """How one candidate fared: ``timed`` (with its median step), ``dropped`` or ``failed``."""

    name: str
    status: Literal["timed", "dropped", "failed"]
    step_s: float | None = None  # median of the timed steps
    first_s: float | None = None  # the first full step: one-off costs (compilation) included
    steps: int = 0  # timed steps behind step_s
    note: str = ""  # why dropped, or the error

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(
            name=str(data["name"]),
            status=data["status"],
            step_s=data.get("step_s"),
            first_s=data.get("first_s"),
            steps=int(data.get("steps") or 0),
            note=str(data.get("note") or ""),
        )


@dataclass
class RaceResult:
    """Every candidate's ``Timing``, in the order they were given."""

    timings: list[Timing] = field(default_factory=list)

    def get(self, name: str) -> Timing | None:
        return next((t for t in self.timings if t.name == name), None)

    def step_s(self, name: str) -> float | None:
        """The median step of candidate ``name``, or None when it was not timed."""
        timing = self.get(name)
        return timing.step_s if timing is not None and timing.status == "timed" else None

    def best(self) -> Timing | None:
        timed = [t for t in self.timings if t.status == "timed"]
        return min(timed, key=lambda t: t.step_s) if timed else None  # type: ignore[arg-type]

    def to_list(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.timings]

    @classmethod
    def from_list(cls, rows: list[dict[str, Any]]) -> RaceResult:
        return cls([Timing.from_dict(r) for r in rows])


class NoCandidateRan(RuntimeError):
    """Every candidate failed; the message names each failure."""

    def __init__(self, timings: list[Timing]) -> None:
        self.timings = timings
        failures = "; ".join(f"{t.name}: {t.note}" for t in timings)
        super().__init__(f"no candidate mode could run a step ({failures})")


def race(
    candidates: list[Candidate],
    *,
    timed_steps: int,
    clock: Clock = time.perf_counter,
    drop_ratio: float = DROP_RATIO,
) -> RaceResult:
    """Time ``candidates``: a probe step and a first step each (the drop rule), then
    ``timed_steps`` interleaved rounds over the survivors. Raises ``NoCandidateRan`` when every
    candidate failed; a failure of some is recorded and the rest go on."""
    timings = {c.name: Timing(c.name, "failed") for c in candidates}
    live: dict[str, StepFn] = {}
    best = {"probe": float("inf"), "first": float("inf")}
    for candidate in candidates:
        timing = timings[candidate.name]
        try:
            step = candidate.build()
            if candidate.probe:
                probe_s = _timed(step, True, clock)
                if _dropped(timing, "probe", probe_s, best, drop_ratio):
                    continue
            timing.first_s = _timed(step, False, clock)
            if _dropped(timing, "first", timing.first_s, best, drop_ratio):
                continue
        except Exception as e:  # any error of a candidate is its failure
            timing.note = _error_text(e)
            continue
        live[candidate.name] = step
    samples: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(timed_steps):
        for name, step in list(live.items()):
            try:
                samples[name].append(_timed(step, False, clock))
            except Exception as e:
                timings[name].note = _error_text(e)
                del live[name]
    for name in live:
        timing = timings[name]
        if samples[name]:
            timing.status, timing.steps = "timed", len(samples[name])
            timing.step_s = statistics.median(samples[name])
        else:  # no timed round asked for: the first step is all there is
            timing.status, timing.step_s = "timed", timing.first_s
    result = RaceResult([timings[c.name] for c in candidates])
    if candidates and all(t.status == "failed" for t in result.timings):
        raise NoCandidateRan(result.timings)
    return result


def _timed(step: StepFn, probe: bool, clock: Clock) -> float:
    start = clock()
    step(probe)
    return clock() - start


def _dropped(
    timing: Timing, phase: str, seconds: float, best: dict[str, float], ratio: float
) -> bool:
    """Drop ``timing``'s candidate when its ``phase`` step took over ``ratio`` x the best so far
    (and say so); else remember a new best."""
    if seconds > ratio * best[phase]:
        what = "probe step (a slice of the batch)" if phase == "probe" else "first step"
        timing.status = "dropped"
        timing.note = (
            f"{what} {_seconds(seconds)} > {ratio:g}x the best so far ({_seconds(best[phase])})"
        )
        return True
    best[phase] = min(best[phase], seconds)
    return False


def _error_text(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _seconds(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 10 else f"{s:.1f} s"


def timing_table(timings: list[Timing], *, indent: str = "  ") -> list[str]:
    """The candidates as aligned lines for a run log: first step, median step, and each timed
    one against the fastest."""
    timed = [t.step_s for t in timings if t.status == "timed" and t.step_s]
    fastest = min(timed) if timed else None
    width = max([len(t.name) for t in timings] + [9])
    lines = [f"{indent}{'candidate':<{width}}  {'first step':>10}  {'median step':>11}  vs best"]
    for t in timings:
        first = _seconds(t.first_s) if t.first_s is not None else "-"
        if t.status == "timed" and t.step_s is not None and fastest:
            median = f"{_seconds(t.step_s)} ({t.steps})" if t.steps else _seconds(t.step_s)
            lines.append(
                f"{indent}{t.name:<{width}}  {first:>10}  {median:>11}  {t.step_s / fastest:.2f}x"
            )
        else:
            lines.append(f"{indent}{t.name:<{width}}  {first:>10}  {t.status}: {t.note}")
    return lines
