"""PNG plots of a run's curves over epochs and of several runs overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from senet.plots.backend import pyplot


def _column(rows: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if value not in (None, ""):
            xs.append(float(row["epoch"]))
            ys.append(float(value))
    return xs, ys


def plot_curves(rows: Sequence[dict], path: str | Path, *, title: str = "") -> None:
    """Three panels over epochs: train/val loss, train/val top-1 (and EMA), learning rate."""
    plt = pyplot()
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val"), ("ema_val_loss", "EMA val")):
        xs, ys = _column(rows, key)
        if xs:
            ax_loss.plot(xs, ys, marker=".", label=label)
    accuracies = (
        ("train_top1", "train"),
        ("val_top1", "val"),
        ("val_flip_top1", "val, flip TTA"),
        ("ema_val_top1", "EMA val"),
    )
    for key, label in accuracies:
        xs, ys = _column(rows, key)
        if xs:
            ax_acc.plot(xs, ys, marker=".", label=label)
    xs, ys = _column(rows, "lr")
    ax_lr.plot(xs, ys, marker=".")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="learning rate")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    ax_lr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overlay(runs: dict[str, Sequence[dict]], path: str | Path) -> None:
    """Validation top-1 and training loss of several runs on shared axes."""
    plt = pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in runs.items():
        ax_acc.plot(*_column(rows, "val_top1"), marker=".", label=name)
        ax_loss.plot(*_column(rows, "train_loss"), marker=".", label=name)
    ax_acc.set(xlabel="epoch", ylabel="val top-1 accuracy (%)", title="validation accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
    for ax in (ax_acc, ax_loss):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
