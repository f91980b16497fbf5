"""The confusion matrix of an evaluation as a PNG (rows: true class, row-normalised)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from senet.plots.backend import pyplot


def plot_confusion(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, *, title: str = ""
) -> None:
    """Row-normalised confusion matrix (rows: true class) with counts when it is small."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(confusion, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(counts)
    side = min(20.0, max(5.0, 0.45 * n + 2))
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 30:
        labels = list(classes) if len(classes) == n else [str(i) for i in range(n)]
        ax.set_xticks(range(n), labels, rotation=90)
        ax.set_yticks(range(n), labels)
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color
                    )
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
