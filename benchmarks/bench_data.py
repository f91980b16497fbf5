"""Does the data pipeline keep up? senet's Fashion-MNIST loader against torchvision's, same run.

    .venv/bin/python benchmarks/bench_data.py [--root DIR] [--batch 128] [--workers 0 2]

Both read the same Fashion-MNIST training images (Debian's dataset-fashion-mnist files, or a
torchvision root) and apply the demo's augmentation: random horizontal flip, 2-pixel zero
padding, random 28x28 crop, normalisation. senet does it on uint8 tensors held in memory;
the peer is torchvision's ``FashionMNIST`` with the usual per-image PIL transforms. Both go
through a plain ``DataLoader`` with the same batch size and worker count. Also timed: one
training step of the demo's model (se_resnet20_cifar, 1 channel), so "keeps up" is a ratio,
loader images/s over model images/s (> 1: the model, not the data, sets the pace). Medians of
alternating rounds; only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import senet
from senet.data.fashion_mnist import MEAN, STD, fashion_mnist_dataset, prepare_fashion_mnist


def loader_rate(loader: DataLoader, batches: int) -> float:
    """Images per second over the first ``batches`` batches of a fresh pass."""
    start, seen = time.perf_counter(), 0
    for i, (x, _) in enumerate(loader):
        seen += len(x)
        if i + 1 == batches:
            break
    return seen / (time.perf_counter() - start)


def model_rate(batch_size: int, steps: int) -> float:
    model = senet.create_model("se_resnet20_cifar", num_classes=10, in_chans=1).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="torchvision root (default: a temp copy)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=40, help="batches per timing")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = args.root or prepare_fashion_mnist(tempfile.mkdtemp(prefix="senet-bench-"))
    ours = fashion_mnist_dataset("train", root=root, augment=True)
    peer = torchvision.datasets.FashionMNIST(
        root,
        train=True,
        transform=transforms.Compose(
            [
                transforms.RandomHorizontalFlip(),
                transforms.RandomCrop(28, padding=2),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        ),
    )
    print(f"Fashion-MNIST train ({len(ours):,} images), batch {args.batch}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    model = statistics.median(model_rate(args.batch, 5) for _ in range(args.rounds))
    print(f"model: se_resnet20_cifar training step {model:,.0f} img/s")
    for workers in args.workers:
        rates: dict[str, list[float]] = {"senet": [], "torchvision": []}
        for _ in range(args.rounds):
            for label, dataset in (("senet", ours), ("torchvision", peer)):
                loader = DataLoader(dataset, batch_size=args.batch, shuffle=True,
                                    num_workers=workers)  # fmt: skip
                rates[label].append(loader_rate(loader, args.batches))
        s, t = (statistics.median(rates[k]) for k in ("senet", "torchvision"))
        print(
            f"workers={workers}: senet {s:,.0f} img/s, torchvision {t:,.0f} img/s, "
            f"senet / torchvision {s / t:.2f}; loader / model: senet {s / model:.1f}, "
            f"torchvision {t / model:.1f}"
        )


if __name__ == "__main__":
    main()
