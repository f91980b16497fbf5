"""Retrofit SE into every torchvision classifier (and a list of timm families); one line each.

    .venv/bin/python benchmarks/retrofit_sweep.py [--timm] [--names resnet50 swin_t ...]

For each model: the sites found, what was skipped, and the seconds retrofit took (one sample
pass, the copy it checks on, two profiles). A model with no usable site must end in retrofit's
ValueError that says why; anything else (a crash, a forward that fails afterwards) is a bug and
makes the exit status 1. Takes about 2 minutes for torchvision, 1 more with --timm, on 2 cores (under 3 in all).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torchvision

import senet

TIMM = [
    "resnet26d", "seresnext26d_32x4d", "convnext_atto", "convnextv2_atto", "efficientnet_b0",
    "regnety_002", "regnetx_002", "cspresnet50", "cspdarknet53", "dla34", "densenet121",
    "dpn68", "hrnet_w18_small", "mobilevit_xxs", "ghostnet_100", "res2net50_26w_4s",
    "resnest14d", "repvgg_a0", "rexnet_100", "mixnet_s", "tf_mobilenetv3_small_100",
    "inception_v4", "xception41", "coatnet_nano_rw_224", "swin_tiny_patch4_window7_224",
    "deit_tiny_patch16_224", "poolformer_s12", "nfnet_l0", "efficientvit_b0", "fastvit_t8",
    "edgenext_xx_small", "levit_128s", "mobileone_s0", "darknet53", "selecsls42b", "vovnet39a",
    "hgnet_tiny",
]  # fmt: skip


def build(name: str) -> tuple[torch.nn.Module, int]:
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], num_classes=10), 224
    size = 299 if "inception" in name else 224
    return torchvision.models.get_model(name, num_classes=10), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm", action="store_true", help="also the timm families above")
    parser.add_argument("--names", nargs="+", help="only these (timm ones as timm:NAME)")
    args = parser.parse_args()
    names = args.names or torchvision.models.list_models(module=torchvision.models)
    if args.timm and not args.names:
        names += [f"timm:{n}" for n in TIMM]
    warnings.simplefilter("ignore")  # the reports say what the warnings would
    bugs = 0
    for name in names:
        model, size = build(name)
        model.eval()
        start = time.perf_counter()
        try:
            report = senet.retrofit(model, "se", input_size=size)
        except ValueError as err:
            print(f"none  {name:32s} {str(err).splitlines()[0][:90]}")
            continue
        except Exception as err:
            bugs += 1
            print(f"BUG   {name:32s} {type(err).__name__}: {str(err).splitlines()[0][:90]}")
            continue
        seconds = time.perf_counter() - start
        try:
            with torch.no_grad():
                model(torch.randn(1, 3, size, size))
        except Exception as err:
            bugs += 1
            print(f"BUG   {name:32s} forward after retrofit: {err}")
            continue
        existing = f" existing={len(report.existing)}" if report.existing else ""
        print(
            f"ok    {name:32s} sites={len(report.sites):3d} skipped={len(report.skipped):3d}"
            f"{existing} {seconds:.1f}s"
        )
    print(f"{len(names)} models, {bugs} bug(s)")
    raise SystemExit(1 if bugs else 0)


if __name__ == "__main__":
    main()
