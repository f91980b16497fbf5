"""SE's squeeze on CPU bf16 channels-last maps: the matrix-product mean senet uses against
``Tensor.mean``, per map shape and thread count, same run.

    .venv/bin/python benchmarks/bench_squeeze.py                 # ResNet-50 and CIFAR-net maps
    .venv/bin/python benchmarks/bench_squeeze.py --threads 2 --shapes 128x16x28x28

``senet.layers.pooling.spatial_mean`` picks the matrix product for bf16 maps; this shows where
that choice holds. Reported: microseconds per call (median of ``torch.utils.benchmark``) and
mean / matmul (> 1: the matrix product is faster).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _timing import median_seconds

from senet.layers.pooling import _MeanByMatmul

RESNET50_MAPS = ["8x256x56x56", "8x512x28x28", "8x1024x14x14", "8x2048x7x7"]
CIFAR_MAPS = ["128x16x28x28", "128x32x14x14", "128x64x7x7"]  # the depth study's, batch 128


def parse_shape(text: str) -> tuple[int, int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape {text!r}: give N x C x H x W, e.g. 8x256x56x56")
    n, c, h, w = (int(p) for p in parts)
    return n, c, h, w


def squeeze_times(shape: tuple[int, ...], threads: int, min_run_time: float) -> dict[str, float]:
    """Seconds per call of each squeeze on a bf16 channels-last map of ``shape``."""
    x = torch.randn(shape).to(torch.bfloat16).to(memory_format=torch.channels_last)
    candidates = {
        "matmul": lambda: _MeanByMatmul.apply(x),
        "mean": lambda: x.mean((2, 3), keepdim=True),
    }
    # both compute the mean (to bf16's rounding; the matmul's 1/HW is itself a bf16 number)
    torch.testing.assert_close(
        candidates["matmul"]().float(), candidates["mean"]().float(), rtol=2e-2, atol=2e-2
    )
    return {
        name: median_seconds(f, min_run_time, num_threads=threads) for name, f in candidates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=None)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--min-run-time", type=float, default=0.3)
    args = parser.parse_args()
    shapes = args.shapes or [parse_shape(s) for s in RESNET50_MAPS + CIFAR_MAPS]
    print(f"torch {torch.__version__}")
    print("| threads | map (N x C x H x W) | matmul us | mean us | mean / matmul |")
    print("|---:|---|---:|---:|---:|")
    for threads in args.threads:
        for shape in shapes:
            t = squeeze_times(shape, threads, args.min_run_time)
            print(
                f"| {threads} | {'x'.join(map(str, shape))} | {t['matmul'] * 1e6:.0f} "
                f"| {t['mean'] * 1e6:.0f} | {t['mean'] / t['matmul']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
