"""Figures of the gate analysis: class-mean gate curves (paper Fig. 6) and specificity by depth."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from senet.analysis.gates import GateStatistics
from senet.plots.backend import pyplot


def plot_class_gates(
    stats: GateStatistics,
    path: str | Path,
    *,
    blocks: list[str] | None = None,
    classes: list[int] | None = None,
    max_blocks: int = 6,
) -> Path:
    """Mean gate per channel for chosen classes and for all images, one panel per block.

    Default blocks: up to ``max_blocks`` evenly spaced from shallow to deep; default classes:
    the first four. Channels stay in index order, as in the paper's figure.
    """
    names = blocks or _evenly_spaced([b.name for b in stats.blocks], max_blocks)
    chosen = classes if classes is not None else list(range(min(4, len(stats.class_names))))
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        block = stats.block(name)
        means = block.class_mean()
        for k in chosen:
            ax.plot(means[k].numpy(), linewidth=0.8, label=stats.class_names[k])
        ax.plot(block.mean().numpy(), color="black", linewidth=1.2, label="all")
        ax.set_title(f"{name} (specificity {block.specificity():.2f})", fontsize=9)
        ax.set_xlabel("channel index")
        ax.set_ylabel("activation")
        ax.set_ylim(-0.05, 1.05)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_specificity(stats: GateStatistics, path: str | Path) -> Path:
    """Class specificity of each block against its depth (shallow to deep)."""
    scores = [b.specificity() for b in stats.blocks]
    fig, ax = pyplot().subplots(figsize=(max(5, 0.35 * len(scores)), 3.5))
    ax.plot(range(len(scores)), scores, marker="o")
    ax.set_xticks(range(len(scores)))
    ax.set_xticklabels([b.name for b in stats.blocks], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("class specificity (eta^2)")
    ax.set_ylim(0, 1)
    ax.set_title("Gate class-specificity by depth")
    fig.tight_layout()
    return _save(fig, path)


def _evenly_spaced(items: list[str], count: int) -> list[str]:
    if len(items) <= count:
        return items
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
