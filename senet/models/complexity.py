"""The golden complexity table: parameters and multiply-adds of every registered model.

``python -m senet.models.complexity --write`` rebuilds ``complexity.json`` beside this file; each
model is built on the meta device (no memory, no time) and counted by ``senet.profile`` for one
image of its ``pretrained_cfg["input_size"]`` (224x224 for ImageNet models, 32x32 for CIFAR):
``conv_fc_macs`` is the multiply-adds of all conv and linear layers (SE's FC layers included);
``macs`` is the paper's "GFLOPs" convention, which adds the attention modules' own pooling,
gating and scaling work; ``attention_macs`` is the attention modules' share of ``macs``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

import torch

GOLDEN_PATH = Path(__file__).with_name("complexity.json")
MEASURED = ("input_size", "params", "conv_fc_macs", "macs", "attention_macs")


def measure(name: str) -> dict[str, Any]:
    """Input size, params and multiply-adds of the registered model ``name``, by senet.profile."""
    from senet.models import create_model
    from senet.profile.counter import profile

    with torch.device("meta"):
        model = create_model(name).eval()
    input_size = tuple(model.pretrained_cfg["input_size"])
    result = profile(model, input_size)
    return {
        "input_size": list(input_size),
        "params": result.params,
        "conv_fc_macs": result.conv_fc_macs,
        "macs": result.macs,
        "attention_macs": result.attention_macs,
    }


def load_golden(path: Path = GOLDEN_PATH) -> dict[str, dict[str, Any]]:
    """The stored table: model name -> {input_size, params, conv_fc_macs[, macs, ...]}."""
    return json.loads(path.read_text())["models"]


def model_table(pattern: str = "*") -> list[dict[str, Any]]:
    """Rows ``{"name": ..., **stored columns}`` of the models matching the fnmatch ``pattern``."""
    return [
        {"name": name, **row}
        for name, row in sorted(load_golden().items(), key=lambda item: _natural(item[0]))
        if fnmatch.fnmatchcase(name, pattern)
    ]


def _natural(name: str) -> tuple[bool, list[Any]]:
    # ImageNet models before CIFAR ones; resnet18 < resnet50 < resnet101 (digit runs as numbers).
    parts = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return name.endswith("_cifar"), parts


def write_golden(path: Path = GOLDEN_PATH) -> dict[str, dict[str, Any]]:
    """Measure every registered model and rewrite ``path``, keeping columns measured elsewhere."""
    from senet.models import list_models

    old = load_golden(path) if path.is_file() else {}
    models = {}
    for name in list_models():
        extra = {k: v for k, v in old.get(name, {}).items() if k not in MEASURED}
        models[name] = {**measure(name), **extra}
    doc = {
        "about": (
            "params, conv_fc_macs (conv + linear multiply-adds), macs (the SE paper's GFLOPs "
            "convention) and attention_macs of every senet model for one image of input_size, "
            "counted by senet.profile; regenerate with "
            "`python -m senet.models.complexity --write`"
        ),
        "torch": torch.__version__.split("+")[0],
        "models": models,
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN_PATH.name}")
    parser.add_argument("--check", action="store_true", help="compare the stored table to now")
    args = parser.parse_args(argv)
    if args.write:
        table = write_golden()
        print(f"wrote {len(table)} models to {GOLDEN_PATH}")
        return 0
    golden = load_golden()
    bad = 0
    for name, row in golden.items():
        now = measure(name) if args.check else row
        flag = "" if all(now[k] == row[k] for k in MEASURED) else "  MISMATCH"
        bad += bool(flag)
        print(f"{name:24s} {now['params'] / 1e6:9.3f} M  {now['conv_fc_macs'] / 1e9:8.4f} G{flag}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
