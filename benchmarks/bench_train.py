"""Training throughput: senet's ResNet-50 and SE-ResNet-50 against timm's, same run.

    .venv/bin/python benchmarks/bench_train.py                      # CPU: batch 8, 112x112
    .venv/bin/python benchmarks/bench_train.py --device cuda        # batch 64, 224, bf16, NHWC

Each senet model is built in timm's layout (stride on the 3x3 conv, padded max pool) and given
timm's weights, and the outputs are compared before timing, so both do the same arithmetic.
Both are trained by the same loop, senet's ``train_one_epoch`` (forward under autocast,
cross-entropy, backward, SGD with momentum and weight decay, LR schedule step), on the same
pre-made batches already on the device. Reported: images/s of each, and senet / timm (> 1:
senet faster), the median over rounds in which the two models take turns, so drifting machine
load hits both alike. Only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import senet
from senet.train import Trainer, train_one_epoch

PAIRS = [("resnet50", "resnet50"), ("se_resnet50", "seresnet50")]  # (senet name, timm name)
TIMM_LAYOUT = {"stride_in_1x1": False, "stem_pool": "torch"}


def build_pair(name: str, peer_name: str, device: torch.device, fmt) -> tuple[nn.Module, nn.Module]:
    """senet's model with timm's weights, and timm's; both checked to compute the same."""
    peer = timm.create_model(peer_name, num_classes=1000)
    ours = senet.create_model(name, num_classes=1000, **TIMM_LAYOUT)
    senet.load_weights(ours, peer.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (ours.eval()(x) - peer.eval()(x)).abs().max().item()
    if diff > 1e-3:
        raise SystemExit(f"{name}: outputs differ from timm {peer_name} by {diff}")
    return ours.to(device, memory_format=fmt), peer.to(device, memory_format=fmt)


def images_per_second(model: nn.Module, batches: list, args, device: torch.device) -> float:
    """Train ``model`` on ``batches`` once; images per second, device work included."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer = Trainer(
        model,
        opt,
        nn.CrossEntropyLoss(),
        device,
        scheduler=sched,
        scaler=scaler,
        amp=args.amp,
        channels_last=args.channels_last,
    )
    # one host sync per measurement, as on CUDA in senet train
    metrics = train_one_epoch(trainer, batches, sync_every=len(batches))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return metrics["images"] / (time.perf_counter() - start)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 64 CUDA, 8 CPU")
    parser.add_argument("--size", type=int, default=None, help="default: 224 CUDA, 112 CPU")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                        help="default: bf16 on CUDA, none on CPU")  # fmt: skip
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="default: on for CUDA")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="steps per timing (CUDA 20, CPU 3)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", nargs="+", default=[p[0] for p in PAIRS])
    args = parser.parse_args()
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    args.batch = args.batch or (64 if on_cuda else 8)
    args.size = args.size or (224 if on_cuda else 112)
    args.amp = args.amp or ("bf16" if on_cuda else "none")
    args.channels_last = on_cuda if args.channels_last is None else args.channels_last
    args.steps = args.steps or (20 if on_cuda else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    gen = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device),
            torch.randint(0, 1000, (args.batch,), generator=gen).to(device),
        )
        for _ in range(args.steps)
    ]
    name = torch.cuda.get_device_name(device) if on_cuda else f"{torch.get_num_threads()} threads"
    print(
        f"device={device} ({name}) batch={args.batch} size={args.size} amp={args.amp} "
        f"channels_last={args.channels_last} steps/timing={args.steps} rounds={args.rounds} "
        f"torch {torch.__version__} timm {timm.__version__}"
    )
    print(
        f"{'senet':14s} {'timm':12s} {'senet img/s':>12s} {'timm img/s':>11s} {'senet/timm':>11s}"
    )
    for ours_name, peer_name in [p for p in PAIRS if p[0] in args.models]:
        ours, peer = build_pair(ours_name, peer_name, device, fmt)
        contenders = {"senet": ours, "timm": peer}
        for model in contenders.values():  # warm-up: allocator, cuDNN autotuning, first calls
            images_per_second(model, batches[:2], args, device)
        rates: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for label, model in contenders.items():
                rates[label].append(images_per_second(model, batches, args, device))
        ratios = [a / b for a, b in zip(rates["senet"], rates["timm"], strict=True)]
        print(
            f"{ours_name:14s} {peer_name:12s} {statistics.median(rates['senet']):12.1f} "
            f"{statistics.median(rates['timm']):11.1f} {statistics.median(ratios):11.3f}"
        )
        del ours, peer, contenders
        if on_cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
