"""The roofline of one profiled model: its leaf op classes as points, arithmetic intensity
against achieved GFLOP/s (log-log), under the machine's measured peak compute and bandwidth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from senet.plots.backend import pyplot

# senet.profiling's ProfileResult (with .breakdown and .roof), read by attribute.
ProfileResult = Any

ATTENTION_COLOR, OTHER_COLOR = "tab:red", "tab:blue"


def check_plot_path(path: str | Path) -> Path:
    """``path`` if a figure can be written there (a format matplotlib knows, a writable folder);
    checked before any measuring, so a bad path costs nothing."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ValueError(
            f"cannot tell the image format of {str(path)!r}: end the file name in one of "
            f"{', '.join('.' + f for f in sorted(formats))} (e.g. roofline.png)"
        )
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; give a file name such as {path}/roofline.png")
    if not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} does not exist; create it or write elsewhere")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"cannot write {str(path)!r}: permission denied; write elsewhere")
    return path


def _roofs(ax: Any, roof: Any, low: float, high: float) -> None:
    """The memory and in-cache roofs up to peak compute, and the ridge point; values in the legend."""
    steps = 200
    grid = [low * (high / low) ** (i / steps) for i in range(steps + 1)]
    label = (
        f"roofline: peak {roof.peak_gflops:.1f} GFLOP/s ({roof.matmul_size}² {roof.dtype} "
        f"matmul), memory {roof.bandwidth_gbs:.1f} GB/s (large copy)"
    )
    ax.plot(grid, [roof.attainable_gflops(x) for x in grid], color="black", lw=2, label=label)
    if roof.cache_bandwidth_gbs > roof.bandwidth_gbs:  # else a busy machine spoilt the small copy
        cached = [min(roof.peak_gflops, x * roof.cache_bandwidth_gbs) for x in grid]
        label = f"in-cache bandwidth {roof.cache_bandwidth_gbs:.1f} GB/s (small copy)"
        ax.plot(grid, cached, color="black", lw=1, ls="--", label=label)
    ax.axvline(roof.ridge, color="gray", ls=":", lw=1)
    ax.annotate(
        f"ridge {roof.ridge:.1f} FLOP/B: memory-bound left of it, compute-bound right",
        (roof.ridge, roof.peak_gflops),
        xytext=(-4, 6),
        textcoords="offset points",
        ha="right",
        color="gray",
        fontsize=8,
    )


def _whole(result: ProfileResult) -> list[tuple[str, float, float, str]]:
    """(label, intensity, GFLOP/s, marker) of the whole forward and of all attention modules,
    from their wall times."""
    breakdown = result.breakdown
    points = []
    if result.intensity and breakdown.forward_ms:
        speed = result.flops / (breakdown.forward_ms * 1e6)
        points.append(("whole forward (wall time)", result.intensity, speed, "*"))
    rows = [result.module(name) for name in breakdown.attention_modules]
    flops, moved = sum(r.flops for r in rows), sum(r.bytes for r in rows)
    if flops and moved and breakdown.attention_ms:
        speed = flops / (breakdown.attention_ms * 1e6)
        points.append((f"all {len(rows)} attention modules (wall time)", flops / moved, speed, "D"))
    return points


def _marker_box(ax: Any, x: float, y: float, area: float) -> Any:
    """The display box of a scatter marker of ``area`` points^2 at data (x, y)."""
    from matplotlib.transforms import Bbox

    cx, cy = ax.transData.transform((x, y))
    r = area**0.5 / 2 * ax.figure.dpi / 72
    return Bbox([[cx - r, cy - r], [cx + r, cy + r]])


def _spread(ax: Any, labels: list[Any], markers: list[tuple[float, float, float]]) -> None:
    """Move labels down, a line at a time, until none overlaps a label placed above it or
    another point's marker; ``markers`` are (x, y, area) of every point drawn."""
    from matplotlib.text import Text

    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    placed: list[Any] = []
    for label in sorted(labels, key=lambda a: -a.xy[1]):
        others = [_marker_box(ax, x, y, a) for x, y, a in markers if (x, y) != tuple(label.xy)]
        for _ in range(15):
            box = Text.get_window_extent(label, renderer)  # the text, without its leader line
            if not any(box.overlaps(other) for other in placed + others):
                break
            x, y = label.get_position()
            label.set_position((x, y - 9))
        placed.append(Text.get_window_extent(label, renderer))


def _op_class_points(
    ax: Any, classes: list[Any], ops_ms: float, markers: list[tuple[float, float, float]]
) -> list[Any]:
    """One point per op class, area by its share of op time (added to ``markers``); returns
    their labels."""
    labels = []
    for c in classes:
        share = c.time_ms / ops_ms if ops_ms else 0.0
        color = ATTENTION_COLOR if c.attention else OTHER_COLOR
        area = 25 + 900 * share
        ax.scatter(c.intensity, c.gflops_per_s, s=area, color=color, alpha=0.6)
        markers.append((c.intensity, c.gflops_per_s, area))
        labels.append(
            ax.annotate(
                f"{c.name} ({100 * share:.1f}% time)",
                (c.intensity, c.gflops_per_s),
                xytext=(8, -3),
                textcoords="offset points",
                fontsize=8,
                color=color,
                arrowprops=dict(arrowstyle="-", color=color, lw=0.5, alpha=0.5),
            )
        )
    return labels


def plot_roofline(result: ProfileResult, path: str | Path) -> Path:
    """Draw ``result``'s op classes against its roofline; returns the path written.

    ``result`` must come from ``senet.profile(..., timing=True, roofline=True)``. Marker area
    follows each class's share of op time; attention's classes are red. Classes without FLOPs
    (copies, views) cannot sit on a log axis and are left out.
    """
    breakdown, roof = result.breakdown, result.roof
    if breakdown is None or roof is None:
        raise ValueError(
            "plot_roofline needs a result profiled with timing=True, roofline=True "
            "(this one has no measured op times or roof)"
        )
    classes = [c for c in breakdown.op_classes if c.intensity and c.gflops_per_s]
    extra = _whole(result)
    xs = [c.intensity for c in classes] + [x for _, x, _, _ in extra] + [roof.ridge]
    ys = [c.gflops_per_s for c in classes] + [y for _, _, y, _ in extra] + [roof.peak_gflops]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 7.5))
    ax.set(xscale="log", yscale="log", ylim=(min(ys) / 3, roof.peak_gflops * 3))
    _roofs(ax, roof, min(xs) / 3, max(xs) * 3)
    markers: list[tuple[float, float, float]] = []
    labels = _op_class_points(ax, classes, breakdown.ops_ms, markers)
    for label, x, y, marker in extra:
        ax.scatter(x, y, s=140, marker=marker, color="black", label=label, zorder=3)
        markers.append((x, y, 140))
    ax.scatter([], [], color=OTHER_COLOR, alpha=0.6, label="op class (area: share of op time)")
    ax.scatter([], [], color=ATTENTION_COLOR, alpha=0.6, label="op class inside attention")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("achieved GFLOP/s (counted FLOPs / measured time)")
    ax.set_title(
        f"{result.name}: batch {breakdown.batch_size}, {breakdown.device}, "
        f"{breakdown.threads} threads, forward (eval), medians of {breakdown.repeats} runs"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncols=2, fontsize=8, frameon=False)
    fig.tight_layout()
    _spread(ax, labels, markers)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
