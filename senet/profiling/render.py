"""Profile results as text: Rich tables, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from senet.layers.validate import check_choice
from senet.profiling.op_costs import CONVENTION
from senet.profiling.work_vs_time import attention_statement

# senet.profiling.counter's result types; read by attribute, not imported: the results render
# themselves through this module (result.render()), so importing them here would be a cycle.
ProfileResult = Any
Comparison = Any

FORMATS = ("table", "json", "csv", "markdown")


def si(n: float) -> str:
    """28088024 -> '28.1M', 3871234567 -> '3.87G': the precision of the paper's tables."""
    if abs(n) >= 1e9:
        return f"{n / 1e9:.2f}G"
    if abs(n) >= 1e6:
        return f"{n / 1e6:.1f}M"
    if abs(n) >= 1e3:
        return f"{n / 1e3:.1f}K"
    return f"{n:g}"


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _signed_pct(value: float) -> str:
    return f"{value:+.2f}%"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def _num(value: float | None, digits: int = 2) -> str:
    """A measured or derived figure, "-" where there is none (no FLOPs, no bytes, no time)."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e3 else si(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(results: Sequence[ProfileResult]) -> tuple[list[str], list[list[str]]]:
    """One column per model, one row per figure."""
    headers = ["", *(r.name for r in results)]
    rows: list[list[str]] = []

    def add(label: str, cells: list[str]) -> None:
        rows.append([label, *cells])

    add("input", [f"{r.batch_size} x {tuple(r.input_size)}" for r in results])
    add("params", [f"{si(r.params)} ({r.params:,})" for r in results])
    add("trainable params", [f"{r.trainable_params:,}" for r in results])
    add("MACs (paper GFLOPs)", [f"{si(r.macs)} ({r.macs:,})" for r in results])
    add(
        "attention MACs",
        [f"{si(r.attention_macs)} ({_pct(r.attention_macs, r.macs)})" for r in results],
    )
    add("conv/linear MACs", [f"{si(r.conv_fc_macs)} ({r.conv_fc_macs:,})" for r in results])
    add("FLOPs", [si(r.flops) for r in results])
    add("bytes moved", [f"{si(r.bytes)}B" for r in results])
    add("FLOPs / byte", [_num(r.intensity) for r in results])
    add("activations", [si(r.activations) for r in results])
    add("counted on", [r.counted_on for r in results])
    if any(r.timing for r in results):
        timings = [r.timing for r in results]
        add("device", [t.device if t else "-" for t in timings])
        add("latency median", [f"{t.median_ms:.2f} ms" if t else "-" for t in timings])
        add("latency p90", [f"{t.p90_ms:.2f} ms" if t else "-" for t in timings])
        add("throughput", [f"{t.throughput:.1f} img/s" if t else "-" for t in timings])
        add("peak memory", [_mib(t.peak_memory_bytes) if t else "-" for t in timings])
    return headers, rows


def _label(result: ProfileResult, row: Any) -> str:
    return result.name if row.name == "" else "  " * row.depth + row.name.rsplit(".", 1)[-1]


def _modules(result: ProfileResult, depth: int) -> tuple[list[str], list[list[str]]]:
    """The module tree down to ``depth``, with each module's share of the model's totals."""
    headers = ["module", "type", "params", "params %", "MACs", "MACs %", "attention MACs", "acts"]
    top = result.modules[0]
    rows = []
    for m in result.modules:
        if m.depth > depth:
            continue
        rows.append(
            [
                _label(result, m),
                m.type + (" *" if m.attention else ""),
                si(m.params),
                _pct(m.params, top.params),
                si(m.macs),
                _pct(m.macs, top.macs),
                si(m.attention_macs),
                si(m.activations),
            ]
        )
    return headers, rows


def _work_and_time(result: ProfileResult, depth: int) -> tuple[list[str], list[list[str]]]:
    """The same tree: share of MACs, FLOPs, bytes moved and intensity; with a by-module
    timing also each module's time, share of the forward and achieved GFLOP/s."""
    headers = ["module", "MACs %", "FLOPs", "bytes", "FLOP/B"]
    breakdown = result.breakdown
    if breakdown is not None:
        headers += ["ms", "time %", "GFLOP/s"]
    top = result.modules[0]
    rows = []
    for m in result.modules:
        if m.depth > depth:
            continue
        row = [_label(result, m), _pct(m.macs, top.macs), si(m.flops), si(m.bytes)]
        row.append(_num(m.intensity))
        if breakdown is not None:
            share = "-" if m.time_ms is None else _pct(m.time_ms, breakdown.forward_ms)
            row += [_ms(m.time_ms), share, _num(m.gflops_per_s)]
        rows.append(row)
    return headers, rows


def _op_classes(result: ProfileResult) -> tuple[list[str], list[list[str]]]:
    """One row per leaf op class: counted work, measured op time, speed, against the roof."""
    breakdown, roof, top = result.breakdown, result.roof, result.modules[0]
    headers = ["op class", "calls", "FLOPs", "FLOPs %", "bytes", "FLOP/B", "ms", "time %"]
    headers += ["GFLOP/s"] + (["% of roof", "bound by"] if roof else [])
    rows = []
    for c in breakdown.op_classes:
        row = [
            c.name,
            str(c.calls),
            si(c.flops),
            _pct(c.flops, top.flops),
            si(c.bytes),
            _num(c.intensity),
            _ms(c.time_ms),
            _pct(c.time_ms, breakdown.ops_ms),
            _num(c.gflops_per_s),
        ]
        if roof:
            speed, intensity = c.gflops_per_s, c.intensity
            reach = speed / roof.attainable_gflops(intensity) if speed and intensity else None
            bound = "-" if intensity is None else "memory" if intensity < roof.ridge else "compute"
            row += ["-" if reach is None else f"{100 * reach:.0f}%", bound]
        rows.append(row)
    return headers, rows


def _notes(result: ProfileResult) -> list[str]:
    """What the times cover, the roof and attention's work against its time, as sentences."""
    notes = []
    if result.breakdown is not None:
        notes.append(f"{result.name}: {result.breakdown.scope()}")
    if result.roof is not None:
        notes.append(result.roof.describe())
    statement = attention_statement(result)
    if statement:
        notes.append(f"{result.name}, {statement}")
    return notes


def _comparison(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    rows_data = comparison.rows()
    timed = all("latency_ms" in row for row in rows_data)
    headers = ["model", "params", "params Δ", "GFLOPs (MACs)", "MACs Δ", "attention MACs"]
    if timed:
        headers += ["latency", "latency ratio", "throughput", "peak memory"]
    rows = []
    for i, (row, result) in enumerate(zip(rows_data, comparison.results, strict=True)):
        cells = [
            row["model"],
            si(row["params"]),
            "baseline" if i == 0 else _signed_pct(row["params_delta_pct"]),
            f"{row['macs'] / 1e9:.2f}",
            "baseline" if i == 0 else _signed_pct(row["macs_delta_pct"]),
            si(row["attention_macs"]),
        ]
        if timed and result.timing is not None:
            cells += [
                f"{row['latency_ms']:.2f} ms",
                "baseline" if i == 0 else f"{row['latency_ratio']:.3f}x",
                f"{result.timing.throughput:.1f} img/s",
                _mib(result.timing.peak_memory_bytes),
            ]
        rows.append(cells)
    return headers, rows


def _rich(headers: list[str], rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 or header == "type" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---" if i == 0 else "---:" for i in range(len(headers))]
    return "\n".join([line(headers), "| " + " | ".join(align) + " |", *map(line, rows)])


def _csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _text(
    tables: list[tuple[str, list[str], list[list[str]]]], format: str, notes: Sequence[str] = ()
) -> str:
    """Rich or Markdown text for several (title, headers, rows) tables, notes and the convention."""
    if format == "markdown":
        parts = [f"**{title}**\n\n{_markdown(h, r)}" for title, h, r in tables]
        return "\n\n".join([*parts, *notes, f"_{CONVENTION}_"]) + "\n"
    console = Console(file=io.StringIO(), width=120, color_system=None, highlight=False)
    for title, headers, rows in tables:
        console.print(_rich(headers, rows, title))
    for note in notes:
        console.print(note, soft_wrap=False)
    console.print(f"Convention: {CONVENTION}", soft_wrap=False)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _by_module(results: Sequence[ProfileResult], depth: int) -> list[tuple]:
    """Each model's module table and, where it was timed by module, its op class table."""
    tables: list[tuple] = []
    for r in results:
        tables.append((f"{r.name} by module (* = attention)", *_modules(r, depth)))
        title = f"{r.name} by module: work" + (" against time" if r.breakdown else "")
        tables.append((title, *_work_and_time(r, depth)))
        if r.breakdown is not None:
            title = f"{r.name} by op class (op time; 'attention' = inside attention modules)"
            tables.append((title, *_op_classes(r)))
    return tables


def _flat(result: ProfileResult) -> dict[str, Any]:
    data = result.to_dict(by_module=False)
    timing = data.pop("timing") or {}
    timing.pop("latencies_ms", None)
    roof = data.pop("roof") or {}
    data.pop("convention")
    data["input_size"] = "x".join(map(str, result.input_size))
    return {
        **data,
        **{f"timing_{k}": v for k, v in timing.items()},
        **{f"roof_{k}": v for k, v in roof.items()},
    }


def _module_records(result: ProfileResult, depth: int) -> list[dict[str, Any]]:
    forward = result.breakdown.forward_ms if result.breakdown else None
    records = []
    for row in result.modules:
        if row.depth <= depth:
            record = {"model": result.name, **row.to_dict()}
            if forward:
                record["time_share"] = None if row.time_ms is None else row.time_ms / forward
            records.append(record)
    return records


def render_results(
    results: Sequence[ProfileResult],
    format: str = "table",
    *,
    by_module: bool = False,
    depth: int = 2,
) -> str:
    """Profile results as ``"table"`` (Rich), ``"json"``, ``"csv"`` or ``"markdown"`` text."""
    check_choice("render", "format", format, FORMATS)
    if format == "json":
        payload = [r.to_dict(by_module=by_module) for r in results]
        return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n"
    if format == "csv":
        if by_module:
            return _csv([rec for r in results for rec in _module_records(r, depth)])
        return _csv([_flat(r) for r in results])
    tables = [(", ".join(r.name for r in results), *_summary(results))]
    if by_module:
        tables += _by_module(results, depth)
    return _text(tables, format, [note for r in results for note in _notes(r)])


def render_comparison(
    comparison: Comparison, format: str = "table", *, by_module: bool = False, depth: int = 2
) -> str:
    """A comparison (deltas against the first model) in one of :data:`FORMATS`."""
    check_choice("render", "format", format, FORMATS)
    if format == "json":
        return json.dumps(comparison.to_dict(by_module=by_module), indent=2) + "\n"
    if format == "csv":
        if by_module:
            return _csv([rec for r in comparison.results for rec in _module_records(r, depth)])
        return _csv(
            [
                {**_flat(r), **{k: v for k, v in row.items() if k != "model"}}
                for r, row in zip(comparison.results, comparison.rows(), strict=True)
            ]
        )
    base = comparison.baseline
    title = f"compared with {base.name}, input {base.batch_size} x {tuple(base.input_size)}"
    tables = [(title, *_comparison(comparison))]
    if by_module:
        tables += _by_module(comparison.results, depth)
    return _text(tables, format, [note for r in comparison.results for note in _notes(r)])
