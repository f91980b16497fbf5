"""Profiling time: senet.profile against fvcore's FlopCountAnalysis, same models, same run.

    .venv/bin/python benchmarks/bench_profile.py [--models resnet50 se_resnet50] [--repeats 5]

Each model is counted by senet.profile (meta device, the default; and with real tensors on the
CPU) and by fvcore (a jit trace with real tensors on the CPU), taking turns, ``repeats`` times
after one warm-up each. Reported: median wall time per count and the ratio fvcore / senet
(> 1 means senet is faster). Model names are senet names when senet's zoo has them, else
``resnet50`` is torchvision's and ``se_resnet50`` is torchvision's with an SE block hand-placed
in every bottleneck; ``torchvision:NAME`` / ``timm:NAME`` work as in the CLI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from senet.models import create_model
from senet.profiling.counter import profile


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call, the contenders taking turns so load drift hits them alike."""
    for fn in fns.values():
        fn()  # warm-up: first-call set-up (dispatch caches, jit) is not what we compare
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "se_resnet50"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--input-size", type=int, nargs=3, default=(3, 224, 224))
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (1 = steady on a busy box)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from fvcore.nn import FlopCountAnalysis  # the peer; a test-time dependency of senet

    size = tuple(args.input_size)
    table = Table(
        title=f"profiling time per count, input 1 x {size}, torch threads: {torch.get_num_threads()}"
    )
    for column in ["model", "senet (meta)", "senet (cpu)", "fvcore (cpu)", "fvcore / senet meta",
                   "fvcore / senet cpu", "senet GMACs", "fvcore GMACs"]:  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    for spec in args.models:
        model, label = create_model(spec), spec
        model.eval()
        x = torch.randn(1, *size)

        def fvcore_count(model: nn.Module = model, x: torch.Tensor = x) -> float:
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return analysis.total()

        medians = interleaved_medians(
            {
                "meta": lambda model=model: profile(model, size),
                "real": lambda model=model: profile(model, size, count_on_meta=False),
                "fvcore": fvcore_count,
            },
            args.repeats,
        )
        meta, real, peer = medians["meta"], medians["real"], medians["fvcore"]
        table.add_row(
            label, f"{meta * 1000:.0f} ms", f"{real * 1000:.0f} ms", f"{peer * 1000:.0f} ms",
            f"{peer / meta:.1f}x", f"{peer / real:.1f}x",
            f"{profile(model, size).macs / 1e9:.3f}", f"{fvcore_count() / 1e9:.3f}",
        )  # fmt: skip
    console = Console(width=160)
    console.print(table)
    console.print(
        "fvcore counts conv/linear MACs + BN and adaptive pooling, and skips the SE block's "
        "mul and sigmoid; senet GMACs follow the SE paper (see senet.profile.CONVENTION)."
    )


if __name__ == "__main__":
    main()
