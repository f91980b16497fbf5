"""SE's wall-time overhead beside its FLOPs overhead, senet and timm side by side, same process.

    python benchmarks/bench_se_overhead.py [--batch 1 8 32] [--modes fp32 bf16-cl fast]
        [--compile] [--train] [--train-models M ...] [--profile-train] [--threads N] [--rounds 5]

Inference: se_resnet50 vs resnet50 (senet) and seresnet50 vs resnet50 (timm), the four models
timed in turn over ``--rounds`` rounds (interleaved, so drifts in machine load hit all four);
each figure is the median over rounds of a ``torch.utils.benchmark`` median. Modes:

  fp32        eager, NCHW, float32
  fp32-cl     eager, channels_last, float32
  bf16-cl     eager, channels_last, bf16 autocast (the mode where SE's tax used to be worst)
  fast        ``senet.optimize_for_inference``: BN folded, channels_last, the CPU's fast dtype;
              timm's models get the same treatment
  fast-compile  ``fast`` plus ``torch.compile`` (with ``--compile``)

``--train`` adds the training step (forward, backward, SGD update) of se_X vs X for each X of
``--train-models`` (default resnet20_cifar; the depth study's are resnet20_cifar resnet56_cifar
resnet110_cifar) on 128 Fashion-MNIST-sized images (1x28x28) in fp32, bf16-cl and, with
``--compile``, bf16-cl compiled. The FLOPs overhead printed beside each is senet's profile in the
paper's convention. ``--profile-train`` adds, per model pair, where SE's extra step time goes in
bf16-cl: the operators whose self CPU time per step grows most (``torch.profiler``; its own
overhead inflates small operators, so read the big rows). Only ratios within one run mean
anything on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import timm
import torch
from _timing import median_seconds

import senet
from senet.models.precision import describe_cpu

INFER_MODES = ("fp32", "fp32-cl", "bf16-cl", "fast", "fast-compile")
TRAIN_MODES = ("fp32", "bf16-cl", "bf16-cl-compile")


def _inference_fn(model: torch.nn.Module, mode: str, x: torch.Tensor) -> Callable[[], object]:
    model = model.eval().to(x.device)
    if mode.startswith("fast"):
        size = tuple(x.shape[1:])
        fast = senet.optimize_for_inference(
            model, input_size=size, compile=mode.endswith("compile")
        )
        return lambda: fast(x)
    cl = mode.endswith("-cl")
    if cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=mode.startswith("bf16"))

    def run() -> object:
        with autocast:
            return model(x)

    return run


def _interleaved(
    fns: dict[str, Callable[[], object]], rounds: int, min_run_time: float, *, inference: bool
) -> dict[str, float]:
    """Median time of each fn over ``rounds`` in which they take turns (after one warm-up call)."""
    with torch.inference_mode() if inference else contextlib.nullcontext():
        for fn in fns.values():  # warm-up (and compilation)
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                times[k].append(median_seconds(fn, min_run_time))
    return {k: statistics.median(v) for k, v in times.items()}


def _macs_overhead(se: str, base: str, input_size: tuple[int, ...], **kw: object) -> float:
    a = senet.profile(senet.create_model(se, **kw), input_size=input_size).macs
    b = senet.profile(senet.create_model(base, **kw), input_size=input_size).macs
    return a / b - 1


def bench_inference(
    batches: list[int], modes: list[str], rounds: int, min_run_time: float, device: str
) -> None:
    macs = _macs_overhead("se_resnet50", "resnet50", (3, 224, 224))
    print(
        f"\nInference, 224x224. SE MACs overhead: +{macs:.2%} (paper: +0.26% from rounded GFLOPs)"
    )
    print(
        "| mode | batch | senet resnet50 ms | senet SE overhead | timm SE overhead "
        "| senet se_resnet50 / timm seresnet50 throughput |\n|---|---:|---:|---:|---:|---:|"
    )
    builders = {
        "senet_r50": lambda: senet.create_model("resnet50"),
        "senet_se50": lambda: senet.create_model("se_resnet50"),
        "timm_r50": lambda: timm.create_model("resnet50"),
        "timm_se50": lambda: timm.create_model("seresnet50"),
    }
    for mode in modes:
        for batch in batches:
            torch.manual_seed(0)
            x = torch.randn(batch, 3, 224, 224, device=device)
            fns = {k: _inference_fn(build(), mode, x) for k, build in builders.items()}
            t = _interleaved(fns, rounds, min_run_time, inference=True)
            ours = t["senet_se50"] / t["senet_r50"] - 1
            theirs = t["timm_se50"] / t["timm_r50"] - 1
            print(
                f"| {mode} | {batch} | {t['senet_r50'] * 1e3:.1f} | {ours:+.1%} | {theirs:+.1%} "
                f"| {t['timm_se50'] / t['senet_se50']:.2f}x |",
                flush=True,
            )
            torch._dynamo.reset()


def _train_step_fn(name: str, mode: str, batch: int, device: str) -> Callable[[], object]:
    torch.manual_seed(0)
    model = senet.create_model(name, in_chans=1).train().to(device)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if mode.startswith("bf16"):
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if mode.endswith("compile") else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16)
        if mode.startswith("bf16")
        else contextlib.nullcontext()
    )

    def step() -> object:
        with autocast:
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def bench_train(
    models: list[str],
    modes: list[str],
    rounds: int,
    min_run_time: float,
    device: str,
    batch: int = 128,
) -> None:
    print(f"\nTraining step, {batch} x 1x28x28; each model against its SE twin se_X")
    print("| model | mode | step ms | img/s | SE MACs overhead | SE step overhead |")
    print("|---|---|---:|---:|---:|---:|")
    for base in models:
        se = f"se_{base}"
        macs = _macs_overhead(se, base, (1, 28, 28), in_chans=1)
        for mode in modes:
            fns = {n: _train_step_fn(n, mode, batch, device) for n in (base, se)}
            t = _interleaved(fns, rounds, min_run_time, inference=False)
            print(
                f"| {base} | {mode} | {t[base] * 1e3:.1f} | {batch / t[base]:.0f} | +{macs:.2%} "
                f"| {t[se] / t[base] - 1:+.1%} |",
                flush=True,
            )
            torch._dynamo.reset()


def _self_ms_per_op(step: Callable[[], object], steps: int) -> dict[str, float]:
    """Self CPU time per training step of each operator (ms), from ``torch.profiler``."""
    step()  # warm-up outside the profile
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}


def profile_train(
    models: list[str], device: str, batch: int = 128, steps: int = 3, top: int = 10
) -> None:
    """Per model pair in bf16-cl: the operators whose self time grows most with SE."""
    for base in models:
        se = f"se_{base}"
        ms = {
            n: _self_ms_per_op(_train_step_fn(n, "bf16-cl", batch, device), steps)
            for n in (base, se)
        }
        total = {n: sum(v.values()) for n, v in ms.items()}
        ops = set(ms[base]) | set(ms[se])
        grown = sorted(ops, key=lambda k: ms[base].get(k, 0.0) - ms[se].get(k, 0.0))
        print(
            f"\n{se} vs {base}, bf16-cl, batch {batch}, profiled: {total[base]:.0f} -> "
            f"{total[se]:.0f} ms self CPU per step ({total[se] / total[base] - 1:+.1%})"
        )
        print("| operator | base ms/step | SE ms/step | SE - base |\n|---|---:|---:|---:|")
        for k in grown[:top]:
            a, b = ms[base].get(k, 0.0), ms[se].get(k, 0.0)
            print(f"| `{k}` | {a:.1f} | {b:.1f} | {b - a:+.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--modes", nargs="+", default=["fp32", "bf16-cl", "fast"], choices=INFER_MODES
    )
    parser.add_argument("--compile", action="store_true", help="add the compiled modes")
    parser.add_argument("--train", action="store_true", help="add the training-step comparison")
    parser.add_argument(
        "--train-models", nargs="+", default=["resnet20_cifar"], help="X of each se_X vs X pair"
    )
    parser.add_argument(
        "--profile-train", action="store_true", help="where SE's training step time goes"
    )
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else describe_cpu()
    print(f"torch {torch.__version__}, timm {timm.__version__}; {where}")
    start = time.time()
    if not args.no_inference:
        modes = list(args.modes) + (["fast-compile"] if args.compile else [])
        bench_inference(args.batch, modes, args.rounds, args.min_run_time, args.device)
    if args.train:
        modes = [m for m in TRAIN_MODES if args.compile or not m.endswith("compile")]
        bench_train(args.train_models, modes, args.rounds, args.min_run_time, args.device)
    if args.profile_train:
        profile_train(args.train_models, args.device)
    print(f"\n({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
