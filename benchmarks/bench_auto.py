"""What ``auto`` picks, against every candidate timed the same way, and SE's cost in that mode.

    python benchmarks/bench_auto.py [--depths 20 56 110] [--batch 128] [--rounds 5] [--steps 3]
        [--epochs 15] [--train-images 60000] [--no-compile] [--inference-batches 8 32]

Training (SE-ResNet-D and its twin ResNet-D, 1x28x28 images, the Fashion-MNIST recipe's
optimiser): for each model, ``auto`` settles its mode as a run of ``--epochs`` x
``--train-images`` would (timing in this process, with a fresh speed cache); then every
candidate (each eager mode, and the compiled variants of ``auto``'s eager pick) trains
``--steps`` steps per round, the candidates taking turns over ``--rounds`` rounds (a drift in
machine load hits all alike). Each figure is the median of the rounds' medians. Reported: each
candidate against the fastest, ``auto``'s pick against the fastest (target: within 5%), and SE's
step overhead over its twin in the mode a grid of the pair settles (one mode for both arms).

Inference: ``optimize_for_inference(model, example_input, dtype="auto")`` of se_resnet50 and
resnet50 at each ``--inference-batches`` batch (on CUDA: replayed as CUDA graphs, the
default there); the dtype each picked and SE's overhead, the two timed in turns. Ratios only
mean something within one run; run on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

import senet
from senet.models.precision import candidate_modes, describe_cpu, device_name
from senet.models.speed_cache import ENV_VAR, SpeedCache
from senet.train import load_config
from senet.train.distributed import resolve_device
from senet.train.fast_path import settle_fast_path
from senet.train.step_race import Workload, build_step
from senet.train.workloads import config_workloads

RECIPE = "fashion_mnist_se_resnet20"


def workload(name: str, args: argparse.Namespace) -> Workload:
    """The recipe's training step for ``name`` at ``--batch`` on 1x28x28 (synthetic images of
    the real size: timing does not depend on their values)."""
    overrides = [
        f"model.name={name}",
        "data.name=synthetic",
        "data.channels=1",
        "data.image_size=28",
        "data.num_classes=10",
        "data.mean=[0.5]",
        "data.std=[0.25]",
        f"data.synthetic_train={args.train_images}",
        "data.train_size=null",
        "data.synthetic_val=256",
        f"data.batch_size={args.batch}",
        f"train.epochs={args.epochs}",
        f"train.device={args.device}",
        "train.amp=auto",
        "train.channels_last=auto",
        f"train.compile={'false' if args.no_compile else 'auto'}",
    ]
    return config_workloads([load_config(RECIPE, overrides)])[0]


def interleaved(fns: dict[str, Callable[[], None]], rounds: int, steps: int) -> dict[str, float]:
    """Median over ``rounds`` of each fn's median over ``steps`` calls, the fns taking turns."""
    for fn in fns.values():  # warm-up: one-off costs and compilation
        fn()
        fn()
    per_round: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            per_round[key].append(statistics.median(times))
    return {k: statistics.median(v) for k, v in per_round.items()}


def train_pair(depth: int, args: argparse.Namespace, cache: SpeedCache) -> dict:
    """``auto``'s picks for SE-ResNet-``depth`` and its twin, every candidate's step, and SE's
    overhead in the mode a grid of the pair settles."""
    names = (f"se_resnet{depth}_cifar", f"resnet{depth}_cifar")
    loads = {name: workload(name, args) for name in names}
    t = loads[names[0]].config.train
    picks = {name: settle_fast_path(t, [w], cache=cache) for name, w in loads.items()}
    joint = settle_fast_path(t, list(loads.values()), cache=cache).mode
    times = {}
    for name, w in loads.items():
        modes = candidate_modes(w.device)
        base = replace(picks[name].mode, compile="none")
        if not args.no_compile:
            modes += [replace(base, compile="model"), replace(base, compile="stages")]
        modes += [joint] if joint not in modes else []
        steps = {m.label: build_step(w, m) for m in dict.fromkeys(modes)}
        fns = {label: (lambda step=step: step(False)) for label, step in steps.items()}
        times[name] = interleaved(fns, args.rounds, args.steps)
    rows = []
    for name in names:
        fastest = min(times[name].values())
        pick = picks[name].mode.label
        rows.append(
            {
                "model": name,
                "candidates_ms": {k: 1e3 * v for k, v in times[name].items()},
                "fastest": min(times[name], key=times[name].__getitem__),
                "auto": pick,
                "source": picks[name].source,
                "auto_vs_fastest": times[name][pick] / fastest,
                "why": picks[name].log_lines()[0],
            }
        )
    se, twin = (times[n][joint.label] for n in names)
    return {"depth": depth, "models": rows, "joint": joint.label, "se_overhead": se / twin - 1}


def inference_rows(args: argparse.Namespace) -> list[dict]:
    """se vs plain through ``optimize_for_inference(dtype="auto")`` at each batch."""
    se_name, plain_name = args.inference_pair
    device = resolve_device(args.device)
    rows = []
    for batch in args.inference_batches:
        fast = {}
        for name in (se_name, plain_name):
            model = senet.create_model(name).eval().to(device)
            x = torch.randn(batch, *args.inference_size, device=device)
            fast[name] = (senet.optimize_for_inference(model, x), x)
        with torch.inference_mode():
            fns = {name: (lambda f=f, x=x: _synced(f, x)) for name, (f, x) in fast.items()}
            times = interleaved(fns, args.rounds, args.steps)
        rows.append(
            {
                "batch": batch,
                "dtype": {name: f.fast_path["dtype"] for name, (f, _) in fast.items()},
                "ms": {name: 1e3 * t for name, t in times.items()},
                "se_overhead": times[se_name] / times[plain_name] - 1,
            }
        )
    return rows


def _synced(model: Callable, x: torch.Tensor) -> None:
    """One call, finished: on CUDA the kernels run after the call returns."""
    model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def _machine(device: torch.device) -> str:
    cpu = describe_cpu()
    return cpu if device.type == "cpu" else f"{device_name(device)}, host {cpu}"


def report(results: dict) -> str:
    lines = [f"bench_auto on {results['machine']}", ""]
    lines += [
        "| model | auto picked (how) | its step / fastest | fastest candidate |",
        "|---|---|---:|---|",
    ]
    for pair in results["train"]:
        for row in pair["models"]:
            lines.append(
                f"| {row['model']} | {row['auto']} ({row['source']}) | "
                f"{row['auto_vs_fastest']:.2f}x | {row['fastest']} |"
            )
    lines += [
        "",
        "| depth | mode a grid of the pair settles | SE step overhead |",
        "|---:|---|---:|",
    ]
    for pair in results["train"]:
        lines.append(f"| {pair['depth']} | {pair['joint']} | {100 * pair['se_overhead']:+.1f}% |")
    lines += ["", "| batch | dtype (SE / plain) | SE inference overhead |", "|---:|---|---:|"]
    for row in results["inference"]:
        dtypes = " / ".join(row["dtype"].values())
        lines.append(f"| {row['batch']} | {dtypes} | {100 * row['se_overhead']:+.1f}% |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians of these)")
    p.add_argument("--steps", type=int, default=3, help="steps per candidate per round")
    p.add_argument("--epochs", type=int, default=15, help="the planned run auto settles for")
    p.add_argument("--train-images", type=int, default=60000)
    p.add_argument("--no-compile", action="store_true", help="eager candidates only")
    p.add_argument("--inference-batches", type=int, nargs="*", default=[8, 32])
    p.add_argument("--inference-pair", nargs=2, default=["se_resnet50", "resnet50"])
    p.add_argument("--inference-size", type=int, nargs=3, default=[3, 224, 224])
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


@contextlib.contextmanager
def fresh_speed_cache() -> Iterator[SpeedCache]:
    """A speed cache of its own (also for ``optimize_for_inference``, through the environment),
    so ``auto`` measures now instead of reading an earlier run's timings."""
    before = os.environ.get(ENV_VAR)
    with tempfile.TemporaryDirectory() as folder:
        os.environ[ENV_VAR] = folder
        try:
            yield SpeedCache(folder)
        finally:
            if before is None:
                os.environ.pop(ENV_VAR)
            else:
                os.environ[ENV_VAR] = before


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with fresh_speed_cache() as cache:
        results = {
            "machine": _machine(resolve_device(args.device)),
            "torch": torch.__version__,
            "train": [train_pair(d, args, cache) for d in args.depths],
            "inference": inference_rows(args),
        }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
