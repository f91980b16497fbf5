"""Time to accuracy: wall time for a Fashion-MNIST recipe to reach 92%, 93% and 94% test top-1.

    .venv/bin/python benchmarks/time_to_accuracy.py                         # train, then report
    .venv/bin/python benchmarks/time_to_accuracy.py model.name=se_resnet56_cifar train.epochs=20
    .venv/bin/python benchmarks/time_to_accuracy.py --run runs/ablations/fashion_mnist_depth/runs/X

Trains the study's recipe (the shipped `fashion_mnist_se_resnet20` on all 60,000 images with
bf16 + channels_last, ResNet-20 by default, 15 epochs; ``key=value`` overrides any field) or
reads a finished run, then reports for each target the first epoch whose test top-1 reaches it
and the time until the end of that epoch: wall (training and the per-epoch evaluation) and
training only (images / measured img/s). Under a cosine schedule the accuracy at epoch k depends
on the total number of epochs, so this is the time of *this* schedule, not of a shorter one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from senet.train.run_log import read_metrics

RECIPE = "fashion_mnist_se_resnet20"  # the shipped recipe, by name
STUDY_RECIPE = [
    "model.name=resnet20_cifar",
    "data.train_size=null",
    "data.val_size=null",
    "train.epochs=15",
    "train.amp=bf16",
    "train.channels_last=true",
    "log.tensorboard=false",
    "log.progress=plain",
]
TARGETS = (92.0, 93.0, 94.0)


def time_to_targets(
    rows: list[dict[str, str]],
    train_images: int,
    targets: tuple[float, ...] = TARGETS,
    column: str = "val_top1",
) -> list[dict[str, Any]]:
    """Per target: first epoch whose ``column`` (val top-1 by default) >= target, and the
    cumulative wall and training seconds until that epoch ends."""
    reached: list[dict[str, Any]] = []
    for target in targets:
        wall = train = 0.0
        hit: dict[str, Any] = {"target": target, "epoch": None, "wall_s": None, "train_s": None}
        for row in rows:
            wall += float(row["epoch_seconds"])
            train += train_images / float(row["train_img_s"])
            if row.get(column) and float(row[column]) >= target:
                hit.update(epoch=int(row["epoch"]), wall_s=wall, train_s=train)
                break
        reached.append(hit)
    return reached


def study_config(out: Path, overrides: list[str]):
    """The study's recipe, writing to ``out``, with ``key=value`` overrides on top."""
    from senet.train import load_config

    return load_config(RECIPE, [*STUDY_RECIPE, f"output_dir={out}", *overrides])


def report(run_dir: Path, targets: tuple[float, ...] = TARGETS) -> str:
    """The time-to-accuracy table of a finished run folder; a second one for its flip-TTA
    accuracy when the run has it (``train.eval_flip=true``)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = read_metrics(run_dir)
    lines = [
        f"{summary['model']} on {summary['data']}: {summary['train_images']:,} images, "
        f"{summary['epochs']} epochs, final top-1 {summary['final_top1']:.2f}%, "
        f"{summary['threads']} threads, amp={summary['config']['train']['amp']}",
        *_target_table(rows, summary["train_images"], targets, "val_top1"),
    ]
    if any(row.get("val_flip_top1") for row in rows):
        final = summary.get("final_flip_top1")
        lines.append(
            "with flip test-time augmentation"
            + (f" (final top-1 {final:.2f}%):" if final is not None else ":")
        )
        lines += _target_table(rows, summary["train_images"], targets, "val_flip_top1")
    return "\n".join(lines)


def _target_table(
    rows: list[dict[str, str]], train_images: int, targets: tuple[float, ...], column: str
) -> list[str]:
    lines = [f"{'target':>8} {'epoch':>6} {'wall (min)':>11} {'train (min)':>12}"]
    for hit in time_to_targets(rows, train_images, targets, column):
        if hit["epoch"] is None:
            lines.append(f"{hit['target']:>7.1f}% {'not reached':>31}")
        else:
            lines.append(
                f"{hit['target']:>7.1f}% {hit['epoch']:>6} {hit['wall_s'] / 60:>11.1f} "
                f"{hit['train_s'] / 60:>12.1f}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="key=value on top of the study's recipe")
    parser.add_argument("--run", type=Path, help="report this finished run instead of training")
    parser.add_argument("--out", type=Path, default=Path("runs/time_to_accuracy"))
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    args = parser.parse_args(argv)
    run_dir = args.run
    if run_dir is None:
        from senet.train import train

        train(study_config(args.out, args.overrides))
        run_dir = args.out
    if not (run_dir / "summary.json").is_file():
        print(f"error: {run_dir} is not a finished senet run (no summary.json)", file=sys.stderr)
        return 2
    print(report(run_dir, tuple(args.targets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
