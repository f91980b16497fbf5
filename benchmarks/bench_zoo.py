"""senet's zoo models against timm and torchvision, same architecture, same run.

    python benchmarks/bench_zoo.py [--device cuda] [--batch 8] [--size 224] [--channels-last]

Each senet model is built in the peer's layout (stride on the 3x3 conv, padded max pool) so both
do the same arithmetic; the peer's weights are loaded into senet's model and the outputs compared
before timing. Reported: median time per inference batch and per training step (forward +
backward), as senet / peer ratios (< 1: senet faster), the median over rounds that alternate
the two models. Timings on a shared machine are noisy;
only the ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import statistics

import timm
import torch
import torchvision
from _timing import median_seconds

import senet

PAIRS = [
    # (senet name, senet kwargs, peer label, peer builder)
    ("resnet50", {}, "torchvision resnet50", lambda: torchvision.models.resnet50()),
    ("se_resnet50", {}, "timm seresnet50", lambda: timm.create_model("seresnet50")),
    ("se_resnext50_32x4d", {}, "timm seresnext50_32x4d",
     lambda: timm.create_model("seresnext50_32x4d")),
]  # fmt: skip
TORCH_LAYOUT = {"stride_in_1x1": False, "stem_pool": "torch"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--min-run-time", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).to(memory_format=fmt)

    print(f"device={device} batch={args.batch} size={args.size} channels_last={args.channels_last}")
    print(f"{'model':22s} {'peer':24s} {'infer senet/peer':>18s} {'train senet/peer':>18s}")
    for name, kwargs, peer_label, build_peer in PAIRS:
        peer = build_peer().to(device, memory_format=fmt)
        ours = senet.create_model(name, **TORCH_LAYOUT, **kwargs)
        senet.load_weights(ours, peer.state_dict())
        ours = ours.to(device, memory_format=fmt)
        peer.eval(), ours.eval()
        with torch.no_grad():
            diff = (ours(x) - peer(x)).abs().max().item()
        assert diff < 1e-3, f"{name}: outputs differ from {peer_label} by {diff}"

        fns = {}
        for label, model in (("senet", ours), ("peer", peer)):

            def infer(model=model):
                with torch.no_grad():
                    model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()

            def train(model=model):
                model(x).sum().backward()
                model.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()

            fns[label] = (model, infer, train)
        # Alternate senet and peer over several rounds so drifting machine load hits both alike;
        # report the median of the per-round ratios.
        ratios: dict[str, list[float]] = {"infer": [], "train": []}
        last: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for kind in ("infer", "train"):
                for label in ("senet", "peer"):
                    model, infer, train = fns[label]
                    model.train(kind == "train")
                    fn = infer if kind == "infer" else train
                    last[label, kind] = median_seconds(fn, args.min_run_time, label=label)
                ratios[kind].append(last["senet", kind] / last["peer", kind])
        med = {k: statistics.median(v) for k, v in ratios.items()}
        print(
            f"{name:22s} {peer_label:24s} "
            f"{med['infer']:8.3f} ({last['senet', 'infer'] * 1e3:.0f} ms) "
            f"{med['train']:8.3f} ({last['senet', 'train'] * 1e3:.0f} ms)"
        )


if __name__ == "__main__":
    main()
