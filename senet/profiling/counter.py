"""What a model costs, counted the way the SE paper counts: params, MACs, attention share, time.

One forward pass under ``torch.utils.flop_counter.FlopCounterMode`` gives everything: torch's
formulas count convolutions and matrix products, senet's table (:mod:`senet.profiling.op_costs`) counts
the pooling, gating and scaling they leave out, and the module tracker attributes each op to
every module on the call stack. By default that pass runs on the ``meta`` device: shapes only,
no arithmetic, no memory, and the model's own weights are never touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry, shape_wrapper

from senet.layers.detect import is_attention_module, outermost_attention
from senet.layers.residual_attention import SoftMask
from senet.layers.validate import check_positive_int
from senet.profiling.breakdown import Breakdown, BreakdownPlan, counted_by_class, measure_breakdown
from senet.profiling.bytes_moved import bytes_moved
from senet.profiling.errors import ProfileError
from senet.profiling.op_costs import (
    ACTIVATION_OPS,
    CONVENTION,
    DATA_MOVEMENT,
    ELEMENTWISE_COSTS,
    no_ops,
)
from senet.profiling.roofline import Roof, measure_roof
from senet.profiling.timing import Timing, eval_mode, measure
from senet.profiling.work_vs_time import attention_statement

aten = torch.ops.aten


@dataclass(frozen=True)
class ModuleCost:
    """The cost of one module (and everything under it), as found by one forward pass."""

    name: str  # qualified name in the model ("" for the model itself)
    type: str  # class name
    depth: int  # 0 for the model, 1 for its children, ...
    params: int
    macs: int  # paper convention (see CONVENTION)
    attention_macs: int  # part of macs spent inside attention modules
    conv_fc_macs: int  # conv and linear multiply-adds only
    flops: int
    activations: int
    attention: bool  # an attention module, or inside one
    bytes: int = 0  # read and written by its ops, op by op (see CONVENTION)
    time_ms: float | None = None  # median wall time inside it, where by-module timing ran

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity: FLOPs per byte moved."""
        return self.flops / self.bytes if self.flops and self.bytes else None

    @property
    def gflops_per_s(self) -> float | None:
        """Achieved speed: counted FLOPs over measured wall time, in GFLOP/s."""
        return self.flops / (self.time_ms * 1e6) if self.flops and self.time_ms else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "intensity": self.intensity, "gflops_per_s": self.gflops_per_s}


@dataclass(frozen=True)
class ProfileResult:
    """Parameters, multiply-adds and (optionally) timings of a model on one input batch.

    ``macs`` is the SE paper's "GFLOPs" figure (x 1e9); ``str(result)`` states the convention.
    """

    name: str
    input_size: tuple[int, ...]  # one sample, without the batch dimension
    batch_size: int  # counts are for the whole batch
    params: int
    trainable_params: int
    macs: int
    attention_macs: int  # the attention modules' share of macs (outermost ones, counted once)
    conv_fc_macs: int
    elementwise_ops: int  # every counted element-wise op, inside attention or not
    flops: int  # 2 * conv_fc_macs + elementwise_ops
    bytes: int  # read and written by every op, op by op
    activations: int
    modules: tuple[ModuleCost, ...] = field(repr=False)  # pre-order, the model first
    counted_on: str = "meta"  # device of the counting pass
    timing: Timing | None = None
    breakdown: Breakdown | None = field(default=None, repr=False)  # by-module timing
    roof: Roof | None = None  # this machine's peaks, measured with the timing
    convention: str = field(default=CONVENTION, repr=False)

    @property
    def attention_share(self) -> float:
        """Fraction of ``macs`` spent in attention modules."""
        return self.attention_macs / self.macs if self.macs else 0.0

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte moved, the whole forward."""
        return self.flops / self.bytes if self.flops and self.bytes else None

    def module(self, name: str) -> ModuleCost:
        """The cost row of the module with qualified name ``name`` ("" is the model)."""
        for row in self.modules:
            if row.name == name:
                return row
        raise KeyError(f"{self.name} has no module named {name!r}")

    def to_dict(self, *, by_module: bool = True) -> dict[str, Any]:
        skip = ("modules", "timing", "breakdown", "roof")
        data = {k: v for k, v in asdict(self).items() if k not in skip}
        data["input_size"] = list(self.input_size)
        data["intensity"] = self.intensity
        data["timing"] = self.timing.to_dict() if self.timing else None
        data["roof"] = self.roof.to_dict() if self.roof else None
        if by_module:
            data["breakdown"] = self.breakdown.to_dict() if self.breakdown else None
            data["attention_statement"] = attention_statement(self)
            data["modules"] = [row.to_dict() for row in self.modules]
        return data

    def render(self, format: str = "table", *, by_module: bool = False, depth: int = 2) -> str:
        """The result as text: ``"table"`` (Rich), ``"json"``, ``"csv"`` or ``"markdown"``."""
        from senet.profiling.render import render_results

        return render_results([self], format, by_module=by_module, depth=depth)

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class Comparison:
    """Several models profiled on the same input; deltas are against the first."""

    results: tuple[ProfileResult, ...]

    @property
    def baseline(self) -> ProfileResult:
        return self.results[0]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per model: absolute figures and deltas against the first model."""
        base = self.baseline
        rows = []
        for r in self.results:
            row: dict[str, Any] = {
                "model": r.name,
                "params": r.params,
                "macs": r.macs,
                "attention_macs": r.attention_macs,
                "params_delta_pct": _pct(r.params, base.params),
                "macs_delta_pct": _pct(r.macs, base.macs),
            }
            if r.timing is not None and base.timing is not None:
                row["latency_ms"] = r.timing.median_ms
                row["latency_ratio"] = r.timing.median_ms / base.timing.median_ms
            rows.append(row)
        return rows

    def to_dict(self, *, by_module: bool = False) -> dict[str, Any]:
        return {
            "convention": CONVENTION,
            "rows": self.rows(),
            "models": [r.to_dict(by_module=by_module) for r in self.results],
        }

    def render(self, format: str = "table", *, by_module: bool = False, depth: int = 2) -> str:
        from senet.profiling.render import render_comparison

        return render_comparison(self, format, by_module=by_module, depth=depth)

    def __str__(self) -> str:
        return self.render()


def _pct(value: int, base: int) -> float:
    return 100.0 * (value - base) / base if base else 0.0


_ACTIVATION_OPS = frozenset(ACTIVATION_OPS)


@cache
def _overloads(packets: tuple[Any, ...]) -> tuple[tuple[Any, Any], ...]:
    """(overload, its packet) for every overload of ``packets``; looked up once per process."""
    return tuple((getattr(p, name), p) for p in packets for name in p.overloads())


class _Counter:
    """One forward pass under FlopCounterMode, with senet's op table, activations and bytes."""

    def __init__(self) -> None:
        self.activations: defaultdict[str, int] = defaultdict(int)
        self.bytes: defaultdict[str, defaultdict[Any, int]] = defaultdict(lambda: defaultdict(int))
        # torch's formulas take tensors (they reduce them to shapes themselves); senet's take
        # shapes. Every priced op, torch's or senet's, also has its bytes counted.
        formulas: dict[Any, Any] = {
            packet: formula
            for packet, formula in flop_registry.items()
            if isinstance(packet, torch._ops.OpOverloadPacket)
        }
        formulas.update({p: shape_wrapper(f) for p, f in ELEMENTWISE_COSTS.items()})
        formulas.update({p: shape_wrapper(no_ops) for p in DATA_MOVEMENT})
        mapping = {packet: self._counting(packet, f) for packet, f in formulas.items()}
        # FlopCounterMode looks ops up by overload packet to count them, but by overload to
        # decide whether to decompose them first: listing the overloads too keeps ops that
        # the table prices whole (batch norm) from going through slow Python decompositions.
        for overload, packet in _overloads(tuple(mapping)):
            mapping[overload] = mapping[packet]
        self.mode = FlopCounterMode(display=False, custom_mapping=mapping)

    def _counting(self, packet: Any, formula: Any) -> Any:
        """``formula`` (tensors in, FLOPs out), also adding the op's bytes (and, for a conv or
        matmul, its output size as activations) to every module it ran in."""
        activation = packet in _ACTIVATION_OPS

        def counted(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            moved = bytes_moved(packet, args, kwargs, out_val)
            for parent in set(self.mode.mod_tracker.parents):
                self.bytes[parent][packet] += moved
                if activation:
                    self.activations[parent] += out_val.numel()
            return formula(*args, out_val=out_val, **kwargs)

        counted._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode: pass tensors
        return counted

    def innermost_module(self) -> str | None:
        """After a failed forward: the deepest module that was entered and not left."""
        entered = set(self.mode.mod_tracker.parents) - {"Global"}
        return max(entered, key=lambda name: name.count("."), default=None)


def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else None
    if not size or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in size):
        raise ProfileError(
            f"input_size must be the shape of one sample as positive ints, e.g. (3, 224, 224) "
            f"for an image model, got {input_size!r}"
        )
    return size


def _dtype_and_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    tensors = [*model.parameters(), *model.buffers()]
    floats = [t for t in tensors if t.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    device = tensors[0].device if tensors else torch.device("cpu")
    return dtype, device


class _MetaBatchNorm(TorchDispatchMode):
    """Eval-mode batch norm on meta tensors, answered from shapes alone.

    torch's meta kernel for batch norm is a Python decomposition that costs more than the rest
    of a ResNet's meta forward together; in eval mode BN is y = a * x + b, whose output has x's
    shape. The channel check of the real kernel stays, so a mismatch still fails.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        inference = func is aten._native_batch_norm_legit_no_training.default or (
            func is aten.native_batch_norm.default and not args[5]
        )
        if not inference:
            return func(*args, **kwargs)
        x, weight, _, running_mean = args[:4]
        for stat in (weight, running_mean):
            if stat is not None and stat.numel() != x.shape[1]:
                raise RuntimeError(
                    f"batch norm over {stat.numel()} channels got input of shape {tuple(x.shape)}"
                )
        return torch.empty_like(x), x.new_empty((0,)), x.new_empty((0,))


def _run_counter(
    model: nn.Module, label: str, shape: tuple[int, ...], on_meta: bool
) -> tuple[_Counter, str]:
    """One counted forward pass; returns the counter and the device it ran on."""
    dtype, device = _dtype_and_device(model)
    counter = _Counter()
    try:
        with torch.no_grad(), _MetaBatchNorm() if on_meta else nullcontext(), counter.mode:
            if on_meta:
                state = {
                    name: torch.empty_like(t, device="meta")
                    for name, t in [*model.named_parameters(), *model.named_buffers()]
                }
                functional_call(model, state, (torch.empty(shape, dtype=dtype, device="meta"),))
            else:
                model(torch.randn(shape, dtype=dtype, device=device))
    except Exception as err:
        if on_meta:
            raise _MetaFailed from err
        raise ProfileError(f"{_failed(model, label, shape, counter)}: {err}") from err
    return counter, "meta" if on_meta else str(device)


class _MetaFailed(Exception):
    """The counting pass on the meta device raised."""


def _failed(model: nn.Module, name: str, shape: tuple[int, ...], counter: _Counter) -> str:
    root = type(model).__name__
    where = counter.innermost_module()
    modules = dict(model.named_modules())
    if where is None or where == root:
        place = f"in {root}.forward itself"
    else:
        fqn = where.removeprefix(root + ".")
        kind = type(modules[fqn]).__name__ if fqn in modules else "?"
        place = f"in module {fqn!r} ({kind})"
    return (
        f"{name} failed on input size {shape[1:]} (batch tensor {shape}) {place}; "
        "check the input size the model expects (channels first, e.g. (3, 224, 224))"
    )


def _within(name: str, ancestor: str) -> bool:
    return ancestor == "" or name == ancestor or name.startswith(ancestor + ".")


def _outer_attention(model: nn.Module) -> list[str]:
    """Names of the outermost attention modules: nested ones are counted once, in these. A
    residual attention net's soft masks count as attention, like SE's gates."""
    found = outermost_attention(model, lambda m: is_attention_module(m) or isinstance(m, SoftMask))
    return [name for name, _ in found]


def _module_costs(model: nn.Module, counter: _Counter) -> list[ModuleCost]:
    """Per-module rows from the tracker's counts; the first row is the whole model."""
    root = type(model).__name__
    counts = counter.mode.get_flop_counts()
    named = list(model.named_modules())
    outer = _outer_attention(model)

    def ops(name: str) -> tuple[int, int]:
        """(conv/linear MACs, element-wise ops) recorded while module ``name`` was running."""
        per_op = counts.get(root if name == "" else f"{root}.{name}", {})
        elementwise = sum(n for op, n in per_op.items() if op in ELEMENTWISE_COSTS)
        # torch counts 2 FLOPs per multiply-add; senet's table counts ops, one per element.
        return (sum(per_op.values()) - elementwise) // 2, elementwise

    params: defaultdict[str, int] = defaultdict(int)  # each parameter counts in every ancestor
    for param_name, param in model.named_parameters():
        path = param_name.split(".")[:-1]
        for depth in range(len(path) + 1):
            params[".".join(path[:depth])] += param.numel()

    rows = []
    for name, module in named:
        conv_fc, elementwise = ops(name)
        inside = any(_within(name, a) for a in outer)
        if inside:
            attention_ew, attention = elementwise, conv_fc + elementwise
        else:
            nested = [ops(a) for a in outer if _within(a, name)]
            attention_ew = sum(e for _, e in nested)
            attention = sum(c + e for c, e in nested)
        tracked = root if name == "" else f"{root}.{name}"
        rows.append(
            ModuleCost(
                name=name,
                type=type(module).__name__,
                depth=0 if name == "" else name.count(".") + 1,
                params=params[name],
                macs=conv_fc + attention_ew,
                attention_macs=attention,
                conv_fc_macs=conv_fc,
                flops=2 * conv_fc + elementwise,
                activations=counter.activations.get(tracked, 0),
                attention=inside,
                bytes=sum(counter.bytes.get(tracked, {}).values()),
            )
        )
    return rows


@dataclass(frozen=True)
class _TimingOptions:
    """How ``profile`` times: where, how often, in which mode, and what beyond the latency."""

    device: str | torch.device = "cpu"
    warmup: int = 5
    repeats: int = 20
    compile: bool = False
    channels_last: bool = False
    by_module: bool = False  # also time each module and each leaf op class
    depth: int = 2
    roofline: bool = False  # also measure the device's peak compute and bandwidth

    def check(self, timing: bool) -> None:
        if self.roofline and not timing:
            raise ProfileError(
                "roofline=True needs timing=True: the roofline's points are measured speeds"
            )
        if timing and self.compile and (self.by_module or self.roofline):
            raise ProfileError(
                "per-module and per-op times need the eager model: hooks and op timers cannot "
                "see inside a torch.compile'd graph; time without compile (--compile) for the "
                "breakdown, or without by_module / roofline (--by-module, --roofline) for the "
                "compiled model's total latency"
            )
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 0:
            raise ProfileError(f"depth must be an int >= 0 (0: the model only), got {self.depth!r}")

    def measure(self, models: list[nn.Module], size: tuple[int, ...], batch: int) -> list[Timing]:
        return measure(
            models,
            size,
            batch_size=batch,
            device=self.device,
            warmup=self.warmup,
            repeats=self.repeats,
            compile=self.compile,
            channels_last=self.channels_last,
        )


def _counted(
    model: nn.Module, label: str, size: tuple[int, ...], batch_size: int, count_on_meta: bool
) -> tuple[ProfileResult, _Counter]:
    """The counting pass: the result without timings, and the counter for a later breakdown."""
    shape = (batch_size, *size)
    with eval_mode(model):
        try:
            counter, counted_on = _run_counter(model, label, shape, on_meta=count_on_meta)
        except _MetaFailed:
            # Either shapes alone were not enough (data-dependent ops, tensors kept outside
            # the module's parameters) or the model rejects the input: a pass with real
            # tensors tells which, and then fails with the model's own, clearer, message.
            counter, counted_on = _run_counter(model, label, shape, on_meta=False)
    rows = _module_costs(model, counter)
    top = rows[0]
    params = list(model.parameters())
    result = ProfileResult(
        name=label,
        input_size=size,
        batch_size=batch_size,
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=top.macs,
        attention_macs=top.attention_macs,
        conv_fc_macs=top.conv_fc_macs,
        elementwise_ops=top.flops - 2 * top.conv_fc_macs,
        flops=top.flops,
        bytes=top.bytes,
        activations=top.activations,
        modules=tuple(rows),
        counted_on=counted_on,
    )
    return result, counter


def _with_breakdown(
    model: nn.Module, result: ProfileResult, counter: _Counter, options: _TimingOptions
) -> ProfileResult:
    """``result`` with each module's time (down to ``depth``), the op classes and the roof."""
    attention = tuple(_outer_attention(model))
    counted = counted_by_class(
        counter.mode.get_flop_counts(), counter.bytes, type(model).__name__, attention
    )
    plan = BreakdownPlan(
        modules=tuple(r.name for r in result.modules if r.depth <= options.depth),
        attention=attention,
        counted=counted,
    )
    times, breakdown = measure_breakdown(
        model,
        result.input_size,
        plan,
        batch_size=result.batch_size,
        device=options.device,
        channels_last=options.channels_last,
        warmup=options.warmup,
        repeats=options.repeats,
    )
    rows = tuple(replace(row, time_ms=times.get(row.name)) for row in result.modules)
    result = replace(result, modules=rows, breakdown=breakdown)
    if options.roofline:
        dtype, _ = _dtype_and_device(model)
        result = replace(result, roof=measure_roof(breakdown.device, dtype=dtype))
    return result


def profile(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    timing: bool = False,
    warmup: int = 5,
    repeats: int = 20,
    compile: bool = False,
    channels_last: bool = False,
    count_on_meta: bool = True,
    name: str | None = None,
    by_module: bool = False,
    depth: int = 2,
    roofline: bool = False,
) -> ProfileResult:
    """Params, MACs (the SE paper's convention), attention share, per-module costs, timings.

    Args:
        model: any nn.Module taking one tensor of shape ``(batch_size, *input_size)``.
        input_size: one sample's shape, channels first.
        batch_size: samples per batch; counts are for the whole batch.
        device: where ``timing`` runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        timing: also measure latency (median, p90), throughput and peak memory.
        warmup: untimed forward passes before ``timing`` measures.
        repeats: timed forward passes for ``timing``.
        compile: time the ``torch.compile``d model (compilation happens in warm-up).
        channels_last: time with model and input in ``torch.channels_last``.
        count_on_meta: count on the meta device (shapes only, fast, no memory); models that
            cannot run there are counted with real tensors on their own device instead.
        name: the label in tables; defaults to the model's class name.
        by_module: with ``timing``, also time every module down to ``depth`` (and every
            attention module) and every leaf op class: ``ModuleCost.time_ms`` and
            ``result.breakdown`` (op classes, attention's time, what the times cover).
        depth: module tree depth timed by ``by_module`` (0: the model only).
        roofline: with ``timing``, also the breakdown and this device's measured peak compute
            and memory bandwidth (``result.roof``), for a roofline plot.

    The model's train/eval flags are restored afterwards; counting runs it in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"profile expects an nn.Module, got {type(model).__name__}")
    size = _check_input_size(input_size)
    check_positive_int("profile", "batch_size", batch_size)
    options = _TimingOptions(
        device, warmup, repeats, compile, channels_last, by_module, depth, roofline
    )
    options.check(timing)
    result, counter = _counted(model, name or type(model).__name__, size, batch_size, count_on_meta)
    if not timing:
        return result
    (measured,) = options.measure([model], size, batch_size)
    result = replace(result, timing=measured)
    if by_module or roofline:
        result = _with_breakdown(model, result, counter, options)
    return result


def compare_costs(
    models: Mapping[str, nn.Module],
    input_size: Sequence[int] = (3, 224, 224),
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    timing: bool = False,
    warmup: int = 5,
    repeats: int = 20,
    compile: bool = False,
    channels_last: bool = False,
    count_on_meta: bool = True,
    by_module: bool = False,
    depth: int = 2,
) -> Comparison:
    """Profile several models on one input; deltas (params %, MACs %, latency ratio) are
    against the first. With ``timing`` the models' timed runs are interleaved in one loop;
    ``by_module`` then times each model's modules and op classes too (one model after another)."""
    if not isinstance(models, Mapping) or not models:
        raise ProfileError(
            "compare_costs expects a non-empty dict of name -> nn.Module, the baseline first, "
            f"got {type(models).__name__} {models!r:.80}"
        )
    options = _TimingOptions(device, warmup, repeats, compile, channels_last, by_module, depth)
    options.check(timing)
    size = _check_input_size(input_size)
    check_positive_int("compare_costs", "batch_size", batch_size)
    counted = [
        _counted(model, name, size, batch_size, count_on_meta) for name, model in models.items()
    ]
    results = [result for result, _ in counted]
    if timing:
        timings = options.measure(list(models.values()), size, batch_size)
        results = [replace(r, timing=t) for r, t in zip(results, timings, strict=True)]
    if timing and by_module:
        results = [
            _with_breakdown(model, result, counter, options)
            for model, result, (_, counter) in zip(models.values(), results, counted, strict=True)
        ]
    return Comparison(tuple(results))
