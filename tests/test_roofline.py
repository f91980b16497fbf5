"""FLOPs against FLOPS: bytes moved, per-module and per-op-class times, the roofs, the plot.

Times come from an injected clock wherever a figure is asserted: no test depends on speed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from senet.layers import SqueezeExcite
from senet.plots.roofline import check_plot_path, plot_roofline
from senet.profiling import breakdown as breakdown_module
from senet.profiling import counter as counter_module
from senet.profiling.breakdown import TimedRuns, module_times, op_times
from senet.profiling.bytes_moved import bytes_moved, tensor_bytes
from senet.profiling.counter import compare_costs, profile
from senet.profiling.op_classes import op_class
from senet.profiling.roofline import measure_roof, memory_bandwidth, peak_compute
from senet.profiling.work_vs_time import attention_statement

aten = torch.ops.aten


# ---- bytes moved, by hand ---------------------------------------------------------------------


def test_conv_bytes_by_hand_and_intensity():
    r = profile(nn.Conv2d(3, 8, 3, padding=1), (3, 16, 16), batch_size=2)
    # input 2x3x16x16, weight 8x3x3x3, bias 8, output 2x8x16x16, float32
    assert r.bytes == 4 * (2 * 3 * 256 + 8 * 27 + 8 + 2 * 8 * 256) == 23_424
    assert r.flops == 2 * (2 * 8 * 256 * 27)
    assert r.intensity == r.flops / r.bytes
    assert r.modules[0].bytes == r.bytes and r.modules[0].intensity == r.intensity


def test_linear_bytes_by_hand_at_its_dtype():
    r = profile(nn.Linear(20, 30), (20,), batch_size=3)
    # addmm(bias, x, W^T): bias 30, x 3x20, W 30x20 (transposed view: same elements), out 3x30
    assert r.bytes == 4 * (30 + 60 + 600 + 90) == 3120
    wide = profile(nn.Linear(20, 30, bias=False).double(), (20,), batch_size=3)
    assert wide.bytes == 8 * (60 + 600 + 90)
    assert wide.intensity == 2 * 3 * 20 * 30 / wide.bytes


def test_se_squeeze_reads_the_map_and_writes_the_descriptor():
    r = profile(SqueezeExcite(64, reduction=16), (64, 8, 8))
    assert r.module("squeeze").bytes == 4 * (64 * 64 + 64)
    assert r.module("squeeze").intensity == pytest.approx(64 * 64 / (4 * (64 * 64 + 64)))


def test_broadcast_operands_count_what_they_hold():
    x, s = torch.empty(2, 4, 8, 8), torch.empty(2, 4, 1, 1)
    out = x * s
    assert bytes_moved(aten.mul, (x, s), {}, out) == 4 * (512 + 8 + 512)
    expanded = s.expand_as(x)  # stride 0 over H and W: still 8 floats in memory
    assert tensor_bytes(expanded) == 4 * 8
    assert bytes_moved(aten.mul, (x, x), {}, out) == 4 * (512 + 512)  # one operand, read once


def test_in_place_and_copy():
    x, y = torch.empty(10), torch.empty(10)
    assert bytes_moved(aten.relu_, (x,), {}, x) == 4 * 20  # read and written back
    assert bytes_moved(aten.copy_, (x, y), {}, x) == 4 * 20  # y read, x written, x not read


def test_copies_cost_bytes_but_no_flops():
    class Concat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x], dim=1)

    r = profile(Concat(), (3, 4, 4))
    assert r.flops == 0 and r.bytes == 4 * (48 + 96)


def test_op_classes_name_composite_and_decomposed_ops_alike():
    assert op_class(aten.conv2d) == op_class(aten.convolution) == "conv"
    assert op_class(aten.linear) == op_class(aten.addmm) == "FC"
    assert op_class(aten.batch_norm) == op_class(aten.native_batch_norm) == "BN"
    assert op_class(aten.relu_) == "ReLU" and op_class(aten.view) == "other"
    assert op_class(aten.mean, True) == "attention global pool"
    assert op_class(aten.addcmul, True) == "attention scale+add"


# ---- timing with an injected clock ------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told (``tick`` per read, ``advance`` from a forward)."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Work(nn.Conv2d):
    """A 1x1 conv whose forward takes ``seconds`` on the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float, channels: int = 4) -> None:
        super().__init__(channels, channels, 1)
        self.clock, self.seconds = clock, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(self.seconds)
        return super().forward(x)


class SELayer(nn.Module):
    """An SE-like gate (recognised as attention by its class name) taking ``seconds``."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(self.seconds)
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


def timed_net(clock: FakeClock) -> nn.Sequential:
    """3 ms, then (1 ms + an SE of 2 ms), then 4 ms: 10 ms in all."""
    return nn.Sequential(
        Work(clock, 0.003),
        nn.Sequential(Work(clock, 0.001), SELayer(clock, 0.002)),
        Work(clock, 0.004),
    )


def test_module_times_are_the_spans_between_the_hooks():
    clock = FakeClock()
    net = timed_net(clock)
    series = module_times(
        net, torch.randn(1, 4, 4, 4), ["", "0", "1", "1.1", "2"], TimedRuns(1, 2, clock)
    )
    assert len(series) == 2
    for run in series:
        assert run == pytest.approx({"": 0.010, "0": 0.003, "1": 0.003, "1.1": 0.002, "2": 0.004})
    assert not net[0]._forward_hooks and not net[0]._forward_pre_hooks  # hooks removed


def test_a_module_called_twice_sums_its_calls_and_attention_sums_its_modules(monkeypatch):
    clock = FakeClock()
    work, first, second = Work(clock, 0.002), SELayer(clock, 0.001), SELayer(clock, 0.003)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.work, self.first, self.second = work, first, second

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.second(self.work(self.first(self.work(x))))

    real = breakdown_module.measure_breakdown
    monkeypatch.setattr(counter_module, "measure_breakdown", functools.partial(real, clock=clock))
    r = profile(Twice(), (4, 4, 4), timing=True, by_module=True, warmup=0, repeats=1)
    assert r.module("work").time_ms == pytest.approx(4.0)
    assert r.breakdown.attention_modules == ("first", "second")
    assert r.breakdown.attention_ms == pytest.approx(4.0)
    assert r.breakdown.forward_ms == pytest.approx(8.0)


def test_op_times_count_calls_and_mark_attention():
    clock = FakeClock(tick=1.0)  # every op call reads the clock twice: one second each
    net = timed_net(FakeClock())
    series, calls = op_times(net, torch.randn(1, 4, 4, 4), ["1.1"], TimedRuns(0, 2, clock))
    assert calls["conv"] == 3
    assert calls["attention global pool"] == calls["attention sigmoid"] == 1
    assert calls["attention scale"] == 1  # x * s
    for run in series:
        assert run == pytest.approx({label: float(n) for label, n in calls.items()})


@pytest.fixture
def fake_breakdown(monkeypatch):
    """profile()'s by-module timing on a fake clock (the total latency stays real)."""
    clock = FakeClock()
    real = breakdown_module.measure_breakdown
    monkeypatch.setattr(counter_module, "measure_breakdown", functools.partial(real, clock=clock))
    return clock


def test_module_time_shares_sum_to_the_forward(fake_breakdown):
    net = timed_net(fake_breakdown)
    r = profile(net, (4, 4, 4), timing=True, by_module=True, depth=1, warmup=0, repeats=3)
    b = r.breakdown
    assert b is not None and b.forward_ms == pytest.approx(10.0) and b.repeats == 3
    depth1 = [m for m in r.modules if m.depth == 1]
    assert [m.time_ms for m in depth1] == pytest.approx([3.0, 3.0, 4.0])
    assert sum(m.time_ms for m in depth1) == pytest.approx(b.forward_ms)
    assert r.module("1.0").time_ms is None  # deeper than depth 1, and not attention
    assert r.module("1.1").time_ms == pytest.approx(2.0)  # attention is always timed
    assert b.attention_ms == pytest.approx(2.0) and b.attention_modules == ("1.1",)
    assert b.attention_time_share == pytest.approx(0.2)
    conv = r.module("0")
    assert conv.gflops_per_s == pytest.approx(conv.flops / 3e-3 / 1e9)


def test_op_class_counts_add_up_to_the_model(fake_breakdown):
    r = profile(
        timed_net(fake_breakdown), (4, 4, 4), timing=True, by_module=True, warmup=0, repeats=1
    )
    classes = r.breakdown.op_classes
    assert sum(c.flops for c in classes) == r.flops
    assert sum(c.bytes for c in classes) == r.bytes
    se = r.module("1.1")
    inside = [c for c in classes if c.attention]
    assert sum(c.flops for c in inside) == se.flops and sum(c.bytes for c in inside) == se.bytes


def test_real_clock_children_fit_inside_their_parent():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()))
    r = profile(net, (3, 12, 12), timing=True, by_module=True, warmup=0, repeats=1)
    children = [m.time_ms for m in r.modules if m.depth == 1]
    assert all(t > 0 for t in children) and sum(children) <= r.breakdown.forward_ms
    assert r.module("2").time_ms >= r.module("2.0").time_ms + r.module("2.1").time_ms
    assert "batch 1 on cpu with" in r.breakdown.scope() and "forward only" in r.breakdown.scope()


def test_statement_is_built_from_the_numbers(fake_breakdown):
    r = profile(
        timed_net(fake_breakdown), (4, 4, 4), timing=True, by_module=True, warmup=0, repeats=1
    )
    text = attention_statement(r)
    share = 100 * r.attention_share
    assert text.startswith(f"attention (1 SELayer modules): {share:.1f}% of MACs")
    assert "20.0% of forward time" in text
    assert f"({0.2 / r.attention_share:.1f}x its share of the MACs)" in text
    se = r.module("1.1")
    assert (
        f"of the bytes at {se.flops / se.bytes:.2f} FLOP/B (whole model {r.intensity:.1f})" in text
    )
    assert "ridge" not in text  # no roof measured: no claim about the bound
    assert attention_statement(profile(timed_net(FakeClock()), (4, 4, 4))) is None  # untimed


def test_statement_names_the_bound_from_the_roof(fake_breakdown, small_roof):
    r = profile(
        timed_net(fake_breakdown), (4, 4, 4), timing=True, roofline=True, warmup=0, repeats=1
    )
    assert r.roof is not None and r.breakdown is not None  # roofline implies the breakdown
    se = r.module("1.1")
    intensity = se.flops / se.bytes
    for ridge, side in ((intensity * 2, "memory-bound"), (intensity / 2, "compute-bound")):
        roof = replace(r.roof, peak_gflops=ridge * r.roof.bandwidth_gbs)  # ridge = peak / bw
        text = attention_statement(replace(r, roof=roof))
        assert f"the ridge point here is {roof.ridge:.1f} FLOP/B, so attention is {side}" in text


def test_no_attention_no_statement(fake_breakdown):
    net = nn.Sequential(Work(fake_breakdown, 0.001))
    r = profile(net, (4, 2, 2), timing=True, by_module=True, warmup=0, repeats=1)
    assert r.breakdown.attention_modules == () and attention_statement(r) is None


# ---- the roofs --------------------------------------------------------------------------------


@pytest.fixture
def small_roof(monkeypatch):
    """profile(roofline=True) measuring small roofs (the defaults take seconds)."""
    small = functools.partial(
        measure_roof, matmul_size=64, copy_bytes=2**16, cache_copy_bytes=2**12, repeats=1
    )
    monkeypatch.setattr(counter_module, "measure_roof", small)


def test_roofs_from_an_injected_clock():
    clock = FakeClock(tick=0.5)  # every timed call lasts 0.5 s
    assert peak_compute(size=8, repeats=2, clock=clock) == pytest.approx(2 * 8**3 / 0.5 / 1e9)
    assert memory_bandwidth(nbytes=4096, repeats=2, clock=clock) == pytest.approx(
        2 * 4096 / 0.5 / 1e9
    )
    with pytest.raises(RuntimeError, match="clock did not advance"):
        peak_compute(size=8, repeats=1, clock=FakeClock())


def test_measured_roofs_are_positive_and_meet_at_the_ridge():
    roof = measure_roof(matmul_size=64, copy_bytes=2**16, cache_copy_bytes=2**12, repeats=2)
    assert roof.peak_gflops > 0 and roof.bandwidth_gbs > 0 and roof.cache_bandwidth_gbs > 0
    assert roof.threads == torch.get_num_threads() and roof.dtype == "float32"
    assert roof.attainable_gflops(roof.ridge) == pytest.approx(roof.peak_gflops)
    assert roof.attainable_gflops(roof.ridge / 10) == pytest.approx(roof.peak_gflops / 10)
    assert "peak compute" in roof.describe() and "ridge point" in roof.describe()
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        peak_compute(size=0)


# ---- output formats and the plot --------------------------------------------------------------


def test_formats_carry_the_new_columns(fake_breakdown, small_roof):
    net = timed_net(fake_breakdown)
    r = profile(
        net, (4, 4, 4), timing=True, roofline=True, by_module=True, depth=1, warmup=0, repeats=1
    )
    data = json.loads(r.render("json", by_module=True))
    assert data["bytes"] == r.bytes and data["roof"]["peak_gflops"] == r.roof.peak_gflops
    assert data["modules"][1]["time_ms"] == pytest.approx(3.0)
    assert data["modules"][1]["intensity"] == r.module("0").intensity
    assert data["breakdown"]["forward_ms"] == pytest.approx(10.0)
    assert {c["name"] for c in data["breakdown"]["op_classes"]} >= {"conv", "attention sigmoid"}
    assert data["attention_statement"] == attention_statement(r)
    rows = list(csv.DictReader(io.StringIO(r.render("csv", by_module=True, depth=1))))
    assert float(rows[1]["time_share"]) == pytest.approx(0.3)
    assert int(rows[0]["bytes"]) == r.bytes and rows[1]["gflops_per_s"]
    flat = next(csv.DictReader(io.StringIO(r.render("csv"))))
    assert float(flat["roof_bandwidth_gbs"]) == r.roof.bandwidth_gbs
    md = r.render("markdown", by_module=True, depth=1)
    assert "by module: work against time" in md and "| attention sigmoid |" in md
    assert attention_statement(r) in md and r.roof.describe() in md


def test_roofline_png_is_written(tmp_path, fake_breakdown, small_roof):
    r = profile(
        timed_net(fake_breakdown), (4, 4, 4), timing=True, roofline=True, warmup=0, repeats=1
    )
    path = plot_roofline(r, tmp_path / "roof.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="needs a result profiled with timing=True, roofline=True"):
        plot_roofline(profile(nn.Conv2d(3, 3, 1), (3, 4, 4)), tmp_path / "no.png")


def test_plot_paths_are_checked_before_measuring(tmp_path):
    assert check_plot_path(tmp_path / "r.png") == tmp_path / "r.png"
    with pytest.raises(ValueError, match="does not exist"):
        check_plot_path(tmp_path / "missing" / "r.png")
    with pytest.raises(ValueError, match="cannot tell the image format"):
        check_plot_path(tmp_path / "r.txt")
    with pytest.raises(ValueError, match="is a folder"):
        (tmp_path / "d.png").mkdir()
        check_plot_path(tmp_path / "d.png")


# ---- bad combinations -------------------------------------------------------------------------


def test_roofline_needs_timing_and_the_eager_model():
    with pytest.raises(ValueError, match="roofline=True needs timing=True"):
        profile(nn.Conv2d(3, 3, 1), (3, 4, 4), roofline=True)
    with pytest.raises(ValueError, match=r"cannot see inside a torch\.compile'd graph"):
        profile(nn.Conv2d(3, 3, 1), (3, 4, 4), timing=True, compile=True, by_module=True)
    with pytest.raises(ValueError, match="depth must be an int >= 0"):
        profile(nn.Conv2d(3, 3, 1), (3, 4, 4), timing=True, by_module=True, depth=-1)


def test_compare_costs_times_each_model_by_module(fake_breakdown):
    models = {"plain": nn.Sequential(Work(fake_breakdown, 0.001)), "se": timed_net(fake_breakdown)}
    c = compare_costs(models, (4, 4, 4), timing=True, by_module=True, warmup=0, repeats=1)
    plain, se = c.results
    assert plain.breakdown.forward_ms == pytest.approx(1.0)
    assert se.breakdown.forward_ms == pytest.approx(10.0)
    assert se.breakdown.attention_modules == ("1.1",) and plain.breakdown.attention_modules == ()
    text = c.render("markdown", by_module=True)
    assert "plain by module: work against time" in text and "se by op class" in text
