"""``train.amp``, ``train.channels_last`` and ``train.compile`` left ``auto``: settled by timing
the run's own training step in each candidate mode, never from CPU flags.

1. Eager: the candidates (``senet.models.precision.candidate_modes``) race on copies of the
   model (``senet.train.step_race``) within 2% of the run's planned steps; the fastest wins.
2. Compiled: only when the run is long enough that even a generous speed-up could repay the
   compile warm-up, the winner is timed compiled whole and per residual stage; compiling is
   chosen when the measured saving over the run exceeds the warm-up it costs.

Explicit settings are never overridden; a resumed run keeps what its checkpoint recorded.
Measurements are cached on disk, so the same model, batch and machine settle the same way.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from senet.config import Config, ConfigError, TrainConfig
from senet.data import DataError
from senet.models.precision import Mode, candidate_modes, reduced_precisions
from senet.models.race import Clock, NoCandidateRan, RaceResult, timing_table
from senet.models.speed_cache import SpeedCache
from senet.train.compile_choice import settle_compile
from senet.train.seed import rng_state, set_rng_state
from senet.train.step_race import (
    EAGER_SHARE,
    Workload,
    eager_timed_steps,
    measure_eager,
    unique_labels,
)
from senet.train.workloads import config_workloads

AUTO_KEYS = ("amp", "channels_last", "compile")
_COMPILE_SETTING = {"none": False, "model": True, "stages": "stages"}


class FastPathError(ConfigError):
    """No candidate mode could train a step: the message names each failure."""


@dataclass
class FastPath:
    """The mode a run trains in, how it was settled (``source``) and why, with the timings."""

    mode: Mode
    source: str  # as set, measured, cached, checkpoint, grid, fallback, too short
    reason: str
    compile_reason: str = ""
    timings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per model: eager
    compiled: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per model
    notes: list[str] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """The ``train.*`` values this mode is: amp, channels_last, compile (false/true/stages)."""
        return {
            "amp": self.mode.amp,
            "channels_last": self.mode.channels_last,
            "compile": _COMPILE_SETTING[self.mode.compile],
        }

    def apply(self, t: TrainConfig) -> None:
        """Put the settled values into the ``auto`` fields of ``t`` (explicit ones stay)."""
        for key, value in self.settings().items():
            if getattr(t, key) == "auto":
                setattr(t, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {**self.settings(), "label": self.mode.label, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastPath:
        names = ("source", "reason", "compile_reason", "timings", "compiled", "notes")
        return cls(Mode(**data["mode"]), **{k: data[k] for k in names if k in data})

    def log_lines(self) -> list[str]:
        """What the run log says: the mode and why, each model's candidates, the compile call."""
        lines = [f"fast path: {self.mode.label} ({self.source}: {self.reason})"]
        for label, rows in self.timings.items():
            many = len(self.timings) > 1
            lines += ([f"  {label}:"] if many else []) + timing_table(
                RaceResult.from_list(rows).timings, indent="    " if many else "  "
            )
        for label, rows in self.compiled.items():
            lines.append(f"  compiled{' ' + label if len(self.compiled) > 1 else ''}:")
            lines += timing_table(RaceResult.from_list(rows).timings, indent="    ")
        if self.compile_reason and self.compile_reason != "as set":
            lines.append(f"  compile: {self.compile_reason}")
        return lines + [f"  note: {n}" for n in self.notes]


def compile_how(setting: bool | str) -> str:
    """``train.compile``'s value as a ``Mode.compile``: false -> none, true -> model, stages."""
    return {False: "none", True: "model", "stages": "stages"}[setting]  # type: ignore[index]


def settle_fast_path(
    t: TrainConfig,
    workloads: list[Workload],
    *,
    same_process: bool = True,
    clock: Clock = time.perf_counter,
    cache: SpeedCache | None = None,
) -> FastPath:
    """Settle ``t``'s ``auto`` fields for ``workloads`` (one run's model, or each distinct
    model of a grid, weighted by its planned steps); ``t`` itself is not changed (see
    ``FastPath.apply``). ``same_process``: the run compiles in this process (and so reuses what
    compiling while measuring built). The random state is the same afterwards."""
    cache = cache or SpeedCache()
    saved = rng_state()  # dropout in the candidates' steps draws from the global generators
    try:
        fast, races = _settle_eager(t, workloads, cache, clock)
        if t.compile != "auto":
            fast.mode = replace(fast.mode, compile=compile_how(t.compile))
            fast.compile_reason = "as set"
        elif races is None:
            fast.compile_reason = f"not compiled ({fast.source}: no eager step to compare with)"
        else:
            how, fast.compile_reason, fast.compiled = settle_compile(
                workloads, fast.mode, races, cache, clock, same_process=same_process
            )
            fast.mode = replace(fast.mode, compile=how)
    finally:
        set_rng_state(saved)
    if fast.mode.amp == "bf16" and fast.source == "as set" and _emulated_bf16(workloads):
        fast.notes.append(
            "this CPU reports no bf16 hardware (AMX/AVX512-BF16): bf16 is likely emulated "
            "there, and slower than fp32"
        )
    return fast


def _settle_eager(
    t: TrainConfig, workloads: list[Workload], cache: SpeedCache, clock: Clock
) -> tuple[FastPath, list[RaceResult] | None]:
    """The eager mode: as set, measured (or cached), or the first candidate when the run is
    too short to measure or the measuring failed; with each workload's race."""
    modes = candidate_modes(workloads[0].device, t.amp, t.channels_last)
    if len(modes) == 1 and t.compile != "auto":
        return FastPath(modes[0], "as set", "set in the config"), None
    try:
        measured = [
            measure_eager(w, modes, cache, clock, eager_timed_steps(w.steps, len(modes)))
            for w in workloads
        ]
    except NoCandidateRan as e:
        raise FastPathError(
            f"train.amp/train.channels_last auto: {e}. Each mode failed a training step; fix "
            "what the errors name, or set train.amp and train.channels_last to see one mode's "
            "error in full"
        ) from None
    except Exception as e:  # the measuring failed, not a mode: fp32 runs on every device
        reason = f"measuring failed ({type(e).__name__}: {e}); using {modes[0].label}"
        return FastPath(modes[0], "fallback", reason), None
    if any(m.race is None for m in measured):
        shortest = min(w.steps for w in workloads)
        reason = (
            f"a run of {shortest} steps is too short to time {len(modes)} candidates within "
            f"{EAGER_SHARE:.0%} of it; using {modes[0].label}"
        )
        return FastPath(modes[0], "too short", reason), None
    races = [m.race for m in measured]
    fast = _fastest(modes, workloads, races)  # type: ignore[arg-type]
    fast.source = "as set" if len(modes) == 1 else _source(m.source for m in measured)
    fast.notes = [m.note for m in measured if m.note]
    return fast, races  # type: ignore[return-value]


def _fastest(modes: list[Mode], workloads: list[Workload], races: list[RaceResult]) -> FastPath:
    """The mode with the least planned time over all workloads (each: steps x median step)."""
    totals = {}
    for mode in modes:
        steps = [r.step_s(mode.label) for r in races]
        if all(s is not None for s in steps):
            pairs = zip(workloads, steps, strict=True)
            totals[mode] = sum(w.steps * (s or 0.0) for w, s in pairs)
    timings = dict(zip(unique_labels(workloads), (r.to_list() for r in races), strict=True))
    if not totals:
        raise FastPathError(
            "train.amp/train.channels_last auto: no mode trained every model of the grid; "
            + "; ".join(
                f"{label}: {r.timings}"
                for label, r in zip(unique_labels(workloads), races, strict=True)
            )
        )
    best = min(totals, key=totals.__getitem__)
    ran = sum(1 for r in races[0].timings if r.status == "timed")
    if len(workloads) == 1:
        step_ms = 1e3 * races[0].step_s(best.label)  # type: ignore[operator]
        reason = f"fastest of {ran} timed candidates, {step_ms:.0f} ms a step"
    else:
        reason = f"least time over the {len(workloads)} models, weighted by their planned steps"
    return FastPath(best, "measured", reason, timings=timings)


def _source(sources: Any) -> str:
    return "cached" if all(s == "cached" for s in sources) else "measured"


def _emulated_bf16(workloads: list[Workload]) -> bool:
    device = workloads[0].device
    return device.type == "cpu" and "bf16" not in reduced_precisions(device)


def recorded_fast_path(t: TrainConfig, state: dict[str, Any]) -> FastPath | None:
    """What the run that wrote checkpoint ``state`` trained in, for the fields ``t`` leaves
    ``auto`` (None when none is): a resumed run keeps its choice, measured or not."""
    autos = [k for k in AUTO_KEYS if getattr(t, k) == "auto"]
    if not autos:
        return None
    saved = state["config"]["train"]
    values = {k: saved[k] if k in autos else getattr(t, k) for k in AUTO_KEYS}
    mode = Mode(values["amp"], bool(values["channels_last"]), compile_how(values["compile"]))
    old = state.get("fast_path") or {}
    reason = f"kept from the checkpoint (first settled: {old.get('source', 'before 0.2')})"
    return FastPath(
        mode,
        "checkpoint",
        reason,
        compile_reason=old.get("compile_reason", "") if "compile" in autos else "as set",
        timings=old.get("timings", {}),
        compiled=old.get("compiled", {}),
    )


def check_explicit(t: TrainConfig, stages: int) -> None:
    """Refuse an explicit mode this model cannot run, naming the option (``stages``: how many
    residual stages it has). Every senet dataset gives 4-D image batches: channels_last fits."""
    if t.compile == "stages" and not stages:
        raise ConfigError(
            "train.compile=stages: this model has no residual stages to compile one by one (no "
            "two direct children that are nn.Sequential chains of blocks); set "
            "train.compile=true to compile it whole"
        )


def settle_for_runs(
    t: TrainConfig,
    configs: list[Config],
    *,
    threads: int | None = None,
    clock: Clock = time.perf_counter,
    cache: SpeedCache | None = None,
) -> FastPath:
    """One fast path for several runs (a grid's points), settled here before any of them
    starts: each distinct model is timed once on ``threads`` (the threads each run will have),
    and the mode with the least total planned time wins. ``t``: the runs' shared settings."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        workloads = config_workloads(configs)
        fast = settle_fast_path(t, workloads, same_process=False, clock=clock, cache=cache)
    except (ConfigError, DataError) as e:
        # A point whose data or model cannot be built fails when it runs, with its own error;
        # the others must not wait on it: they train in fp32, the mode every device runs.
        reason = f"a run could not be built to time it ({e}); using fp32 NCHW for every run"
        fast = FastPath(Mode(), "fallback", reason)
    finally:
        torch.set_num_threads(before)
    return fast
