"""Where a forward pass spends its time, per module and per leaf op class, beside its counted work.

Module times come from forward pre-hooks and hooks: wall time from entering a module to leaving
it, its children and its Python code included. Op times come from a dispatch mode that times
each aten op call on its own (kernel and dispatch, not the Python between ops). Both run the
model as :func:`senet.profiling.timing.measure` does: eval mode, ``torch.inference_mode``,
forward only. Each figure is the median over the timed runs.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from senet.profiling.op_classes import ATTENTION_PREFIX, op_class
from senet.profiling.timing import eval_mode, prepare, random_batch, sync, timing_device

Clock = Callable[[], float]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if numerator and denominator else None


@dataclass(frozen=True)
class OpClassCost:
    """One class of leaf ops (all convs, all of SE's gates, ...): counted work, measured time."""

    name: str  # "conv", "BN", "attention global pool", ... (see senet.profiling.op_classes)
    flops: int  # per forward, as counted (senet's convention)
    bytes: int  # read and written per forward, op by op
    calls: int  # op calls per forward, as timed
    time_ms: float  # median over the timed runs of this class's summed op time per forward

    @property
    def attention(self) -> bool:
        return self.name.startswith(ATTENTION_PREFIX)

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity, FLOPs per byte moved."""
        return _ratio(self.flops, self.bytes)

    @property
    def gflops_per_s(self) -> float | None:
        """Achieved speed: counted FLOPs over measured time, in GFLOP/s."""
        return _ratio(self.flops, self.time_ms * 1e6)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "attention": self.attention,
            "intensity": self.intensity,
            "gflops_per_s": self.gflops_per_s,
        }


@dataclass(frozen=True)
class Breakdown:
    """How the per-module and per-op times were taken, the totals they are shares of, op classes."""

    device: str
    threads: int  # torch.get_num_threads() during the runs
    batch_size: int
    channels_last: bool
    warmup: int  # untimed runs before each timed series
    repeats: int  # timed runs; every time is a median over them
    forward_ms: float  # the model's own span in the hooked runs: what module shares are of
    attention_ms: float  # inside the outermost attention modules, summed per run
    attention_modules: tuple[str, ...]  # their qualified names
    ops_ms: float  # all op calls, summed per run: what op class shares are of
    op_classes: tuple[OpClassCost, ...] = field(repr=False)

    @property
    def attention_time_share(self) -> float:
        return self.attention_ms / self.forward_ms if self.forward_ms else 0.0

    def scope(self) -> str:
        """What the times cover, in one line for the output."""
        layout = ", channels_last" if self.channels_last else ""
        return (
            f"Times: forward only (eval, torch.inference_mode), batch {self.batch_size}{layout} "
            f"on {self.device} with {self.threads} threads; medians of {self.repeats} runs after "
            f"{self.warmup} warm-up. Module time = wall time from entering to leaving it "
            "(children included), share of the whole forward; op time = each aten op call "
            "timed alone, share of all op calls."
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "op_classes"}
        data["attention_modules"] = list(self.attention_modules)
        data["scope"] = self.scope()
        data["op_classes"] = [c.to_dict() for c in self.op_classes]
        return data


@dataclass(frozen=True)
class TimedRuns:
    """How to run a timed series: warm-up and timed runs, the clock and the device barrier."""

    warmup: int
    repeats: int
    clock: Clock = time.perf_counter
    sync: Callable[[], None] = lambda: None


def _series(forward: Callable[[], Any], spent: dict, runs: TimedRuns) -> list[dict]:
    """Warm up, then one copy of ``spent`` (cleared before each run) per timed run."""
    for _ in range(runs.warmup):
        forward()
    series = []
    for _ in range(runs.repeats):
        spent.clear()
        forward()
        series.append(dict(spent))
    return series


def _span_hooks(
    modules: Mapping[str, nn.Module],
    on_enter: Callable[[str], None],
    on_leave: Callable[[str], None],
) -> list[RemovableHandle]:
    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: on_enter(name)))
        handles.append(
            module.register_forward_hook(
                lambda m, a, o, name=name: on_leave(name), always_call=True
            )
        )
    return handles


def module_times(
    model: nn.Module, x: torch.Tensor, names: Iterable[str], runs: TimedRuns
) -> list[dict[str, float]]:
    """Seconds spent inside each named module ("" is the model), all its calls, one dict a run."""
    modules = dict(model.named_modules())
    spent: defaultdict[str, float] = defaultdict(float)
    entered: defaultdict[str, list[float]] = defaultdict(list)

    def enter(name: str) -> None:
        runs.sync()
        entered[name].append(runs.clock())

    def leave(name: str) -> None:
        runs.sync()
        spent[name] += runs.clock() - entered[name].pop()

    handles = _span_hooks({name: modules[name] for name in names}, enter, leave)
    try:
        return _series(lambda: model(x), spent, runs)
    finally:
        for handle in handles:
            handle.remove()


class _OpTimer(TorchDispatchMode):
    """Times each aten op call, keyed by its class ("attention ..." inside attention modules)."""

    def __init__(self, runs: TimedRuns) -> None:
        super().__init__()
        self.runs = runs
        self.attention_depth = 0
        self.spent: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.runs.sync()
        start = self.runs.clock()
        out = func(*args, **(kwargs or {}))
        self.runs.sync()
        label = op_class(getattr(func, "_overloadpacket", func), self.attention_depth > 0)
        self.spent[label] += self.runs.clock() - start
        self.calls[label] += 1
        return out


def op_times(
    model: nn.Module, x: torch.Tensor, attention: Iterable[str], runs: TimedRuns
) -> tuple[list[dict[str, float]], Counter[str]]:
    """Seconds per op class, one dict a run, and the op calls per class of one forward."""
    modules = dict(model.named_modules())
    timer = _OpTimer(runs)

    def enter(name: str) -> None:
        timer.attention_depth += 1

    def leave(name: str) -> None:
        timer.attention_depth -= 1

    handles = _span_hooks({name: modules[name] for name in attention}, enter, leave)
    calls: Counter[str] = Counter()  # of the latest run

    def forward() -> None:
        timer.calls.clear()
        with timer:
            model(x)
        calls.clear()
        calls.update(timer.calls)

    try:
        return _series(forward, timer.spent, runs), calls
    finally:
        for handle in handles:
            handle.remove()


def _median_ms(series: Sequence[Mapping[str, float]], key: str) -> float:
    return 1000.0 * statistics.median(run.get(key, 0.0) for run in series)


def counted_by_class(
    flops: Mapping[str, Mapping[Any, int]],
    bytes_: Mapping[str, Mapping[Any, int]],
    root: str,
    attention: Sequence[str],
) -> dict[str, tuple[int, int]]:
    """(FLOPs, bytes) per op class from per-module, per-op counts (tracker names: ``root.a.b``).

    An op counts as attention when it ran inside one of the outermost ``attention`` modules.
    """
    totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    tracked = [root if a == "" else f"{root}.{a}" for a in attention]
    for i, counts in enumerate((flops, bytes_)):
        for packet, total in counts.get(root, {}).items():
            inside = sum(counts.get(name, {}).get(packet, 0) for name in tracked)
            totals[op_class(packet, True)][i] += inside
            totals[op_class(packet, False)][i] += total - inside
    return {label: (f, b) for label, (f, b) in totals.items() if f or b}


def _op_classes(
    counted: Mapping[str, tuple[int, int]], series: Sequence[Mapping[str, float]], calls: Counter
) -> tuple[OpClassCost, ...]:
    labels = sorted(
        {*counted, *calls}, key=lambda label: (label.startswith(ATTENTION_PREFIX), label)
    )
    return tuple(
        OpClassCost(
            name=label,
            flops=counted.get(label, (0, 0))[0],
            bytes=counted.get(label, (0, 0))[1],
            calls=calls.get(label, 0),
            time_ms=_median_ms(series, label),
        )
        for label in labels
    )


@dataclass(frozen=True)
class BreakdownPlan:
    """What to time: the modules to hook, the outermost attention modules, the counted work."""

    modules: tuple[str, ...]  # "" (the model) first
    attention: tuple[str, ...]
    counted: Mapping[str, tuple[int, int]]  # op class -> (FLOPs, bytes), see counted_by_class


def measure_breakdown(
    model: nn.Module,
    input_size: Sequence[int],
    plan: BreakdownPlan,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    warmup: int = 5,
    repeats: int = 20,
    clock: Clock = time.perf_counter,
) -> tuple[dict[str, float], Breakdown]:
    """Median milliseconds per planned module and the :class:`Breakdown` (op classes included).

    The module series runs first, with only the span hooks attached; then the op series, under
    the op timer (whose own cost falls between the timed calls, not inside them).
    """
    device = timing_device([model], device)
    x = random_batch(input_size, batch_size, device, channels_last)
    run = prepare(model, device, channels_last)
    runs = TimedRuns(warmup, repeats, clock, lambda: sync(device))
    names = tuple(dict.fromkeys(("", *plan.modules, *plan.attention)))
    with torch.inference_mode(), eval_mode(run):
        by_module = module_times(run, x, names, runs)
        by_op, calls = op_times(run, x, plan.attention, runs)
    attention_runs = [{"": sum(r.get(a, 0.0) for a in plan.attention)} for r in by_module]
    breakdown = Breakdown(
        device=str(device),
        threads=torch.get_num_threads(),
        batch_size=batch_size,
        channels_last=channels_last,
        warmup=warmup,
        repeats=repeats,
        forward_ms=_median_ms(by_module, ""),
        attention_ms=_median_ms(attention_runs, ""),
        attention_modules=plan.attention,
        ops_ms=_median_ms([{"": sum(r.values())} for r in by_op], ""),
        op_classes=_op_classes(plan.counted, by_op, calls),
    )
    return {name: _median_ms(by_module, name) for name in names}, breakdown
