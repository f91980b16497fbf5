"""Where a CIFAR ResNet's training step goes, per stage and memory layout (bf16 autocast, CPU).

    .venv/bin/python benchmarks/bench_stage_layout.py                       # ResNet-20, batch 128
    .venv/bin/python benchmarks/bench_stage_layout.py --model se_resnet20_cifar --threads 2
    .venv/bin/python benchmarks/bench_stage_layout.py --batch 128 256 512       # batch size too

The Fashion-MNIST recipe trains in bf16 + channels_last, and a profile showed its first stage
(16 channels at 28x28) taking about half of the step. This measures, on Fashion-MNIST-sized
input, (1) forward + backward of each stage alone in NCHW and in channels_last, and (2) the
whole training step (senet's ``train_one_epoch``: autocast, cross-entropy, backward, SGD) in
three layouts: channels_last everywhere (the recipe; at the first ``--batch`` it is the
reference of the ratios), NCHW everywhere, and NCHW for the stem and stage 1 with channels_last
after, at each batch size given. Rounds interleave the variants and the median is reported, so drifting load hits all alike; only ratios within one
run mean anything, and only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import senet
from senet.train import Trainer, train_one_epoch

CL, NCHW = torch.channels_last, torch.contiguous_format


class ToChannelsLast(nn.Module):
    """The layout switch of the mixed variant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=CL)


def build(name: str, layout: str) -> nn.Module:
    model = senet.create_model(name, num_classes=10, in_chans=1)
    if layout == "channels_last":
        return model.to(memory_format=CL)
    if layout == "mixed":  # stem + stage 1 NCHW, the rest channels_last
        for stage in (model.layer2, model.layer3):
            stage.to(memory_format=CL)
        model.layer2 = nn.Sequential(ToChannelsLast(), model.layer2)
    return model


def stages(model: nn.Module) -> dict[str, nn.Module]:
    return {
        "stem+stage1": nn.Sequential(model.stem, model.layer1),
        "stage2": model.layer2,
        "stage3": model.layer3,
    }


def stage_ms(module: nn.Module, x: torch.Tensor, steps: int) -> float:
    """Milliseconds per forward + backward of ``module`` on ``x`` under bf16 autocast."""
    x = x.detach().requires_grad_()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)
        out.float().sum().backward()
    return (time.perf_counter() - start) / steps * 1000


def step_rate(model: nn.Module, layout: str, batches: list) -> float:
    """Training images per second of senet's training loop."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(
        model, opt, nn.CrossEntropyLoss(), torch.device("cpu"),
        amp="bf16", channels_last=layout == "channels_last",
    )  # fmt: skip
    start = time.perf_counter()
    metrics = train_one_epoch(trainer, batches, sync_every=len(batches))
    return metrics["images"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20_cifar")
    parser.add_argument("--batch", type=int, nargs="+", default=[128], help="batch sizes")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--steps", type=int, default=8, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch[0], 1, args.size, args.size)
    print(
        f"{args.model} batch={args.batch[0]} {args.size}x{args.size} bf16 autocast, "
        f"{torch.get_num_threads()} threads, {args.steps} steps x {args.rounds} rounds, "
        f"torch {torch.__version__}"
    )

    # (1) each stage alone, forward + backward
    probe = build(args.model, "nchw").train()
    inputs, h = {}, x
    with torch.no_grad():
        for label, module in stages(probe).items():
            inputs[label] = h
            h = module(h)
    per_stage: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for fmt_name, fmt in (("nchw", NCHW), ("channels_last", CL)):
            for label, module in stages(probe.to(memory_format=fmt)).items():
                ms = stage_ms(module, inputs[label].contiguous(memory_format=fmt), args.steps)
                per_stage.setdefault((label, fmt_name), []).append(ms)
    print(f"\n{'stage':12s} {'NCHW ms':>9s} {'CL ms':>9s} {'CL / NCHW':>10s}")
    for label in inputs:
        a = statistics.median(per_stage[(label, "nchw")])
        b = statistics.median(per_stage[(label, "channels_last")])
        print(f"{label:12s} {a:9.1f} {b:9.1f} {b / a:10.2f}")

    # (2) the whole training step, the same images per timing at every batch size
    layouts = ("channels_last", "nchw", "mixed")
    images = args.steps * args.batch[0]
    variants = {(b, layout): build(args.model, layout) for b in args.batch for layout in layouts}
    data = {}
    for b in args.batch:
        xs = torch.randn(max(1, images // b), b, 1, args.size, args.size)
        data[b] = [(xb, torch.randint(0, 10, (b,))) for xb in xs]
    for (b, layout), model in variants.items():  # warm-up
        step_rate(model, layout, data[b][:2])
    rates: dict[tuple[int, str], list[float]] = {key: [] for key in variants}
    for _ in range(args.rounds):
        for (b, layout), model in variants.items():
            rates[(b, layout)].append(step_rate(model, layout, data[b]))
    ref = rates[(args.batch[0], "channels_last")]
    print(f"\n{'batch':>5s} {'layout':14s} {'img/s':>8s} {'ratio':>7s}  (ratio: / channels_last "
          f"at batch {args.batch[0]}, median over rounds)")  # fmt: skip
    for (b, layout), rate in rates.items():
        ratio = statistics.median(a / r for a, r in zip(rate, ref, strict=True))
        print(f"{b:5d} {layout:14s} {statistics.median(rate):8.1f} {ratio:7.3f}")


if __name__ == "__main__":
    main()
