"""The golden complexity table: parameters and multiply-adds of every registered model.

``senet models --write`` rebuilds ``complexity.json`` beside this file (``--check`` compares); each
model is built on the meta device (no memory, no time) and counted by ``senet.profile`` for one
image of its ``pretrained_cfg["input_size"]`` (224x224 for ImageNet models, 299x299 for
Inception-ResNet-v2, 32x32 for CIFAR):
``conv_fc_macs`` is the multiply-adds of all conv and linear layers (SE's FC layers included);
``macs`` is the paper's "GFLOPs" convention, which adds the attention modules' own pooling,
gating and scaling work; ``attention_macs`` is the attention modules' share of ``macs``;
``paper`` (where the SE paper prints the model) holds the printed GFLOPs and params and which
column reproduces them.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import torch

GOLDEN_PATH = Path(__file__).with_name("complexity.json")
MEASURED = ("input_size", "params", "conv_fc_macs", "macs", "attention_macs")

# The SE paper's printed figures (Tables 2-3; "GFLOPs" = multiply-adds), stored beside senet's in
# the table as ``paper``. ``counting`` says which of senet's two columns reproduces the printed
# figure: the paper's SE rows are not counted under one rule (its SE-ResNet-50 3.87 and
# SE-BN-Inception 2.04 include SE's pooling and scaling, its SE-VGG-16 15.48 and SE-MobileNet 572
# fall between the two columns).
_MACS = "reproduced by macs (conv + FC + SE pooling/gating/scaling); conv_fc_macs rounds lower"
_BOTH = "conv_fc_macs and macs round to the same figure"
_NEAR = "within 1%: the paper's deeper ResNets count 0.1-0.3% more than the public layouts"
PAPER: dict[str, dict[str, Any]] = {
    "resnet50": {"table": "2", "gflops": 3.86, "params_m": 25.6, "counting": _BOTH},
    "se_resnet50": {"table": "2", "gflops": 3.87, "params_m": 28.1, "counting": _MACS},
    "resnet101": {"table": "2", "gflops": 7.58, "counting": _NEAR},
    "se_resnet101": {"table": "2", "gflops": 7.60, "counting": _NEAR},
    "resnet152": {"table": "2", "gflops": 11.30, "counting": _NEAR},
    "se_resnet152": {"table": "2", "gflops": 11.32, "counting": _NEAR},
    "resnext50_32x4d": {"table": "2", "gflops": 4.24, "counting": _NEAR},
    "se_resnext50_32x4d": {"table": "2", "gflops": 4.25, "counting": _NEAR},
    "resnext101_32x4d": {"table": "2", "gflops": 7.99, "counting": _NEAR},
    "se_resnext101_32x4d": {"table": "2", "gflops": 8.00, "counting": _NEAR},
    "vgg16_bn": {"table": "2", "gflops": 15.47, "counting": _BOTH},
    "se_vgg16_bn": {
        "table": "2",
        "gflops": 15.48,
        "counting": "neither: conv_fc_macs gives 15.47, macs 15.50 (SE's pooling and scaling "
        "add 27 M); both within 0.2%",
    },
    "bninception": {"table": "2", "gflops": 2.03, "counting": _BOTH},
    "se_bninception": {"table": "2", "gflops": 2.04, "counting": _MACS},
    "inception_resnet_v2": {
        "table": "2",
        "gflops": 11.75,
        "counting": "not reproduced: the public layout (timm/Cadene, whose weights senet loads "
        "with equal outputs) counts 13.16 G at 299x299, 12% more, under either column; no input "
        "size reproduces 11.75 (291: 11.69, 299: 13.16). Most likely the authors counted their own "
        "unreleased re-implementation; the public architecture is kept",
    },
    "se_inception_resnet_v2": {
        "table": "2",
        "gflops": 11.76,
        "counting": "base not reproduced (see inception_resnet_v2); the printed SE increment "
        "(+0.01 G) is conv_fc_macs' (+0.009 G); macs adds +0.03 G",
    },
    "mobilenet_v1": {"table": "3", "gflops": 0.569, "params_m": 4.2, "counting": _BOTH},
    "se_mobilenet_v1": {
        "table": "3",
        "gflops": 0.572,
        "params_m": 4.7,
        "counting": "neither: conv_fc_macs gives 569 M, macs 575 M (SE's pooling and scaling add "
        "5.4 M); both within 0.5%",
    },
    "shufflenet_v1_g3": {
        "table": "3",
        "gflops": 0.140,
        "params_m": 1.8,
        "counting": "137.5 M measured (-1.8%): 140 is the ShuffleNet paper's own rounded figure "
        "for this layout (1.86 M params)",
    },
    "se_shufflenet_v1_g3": {
        "table": "3",
        "gflops": 0.142,
        "params_m": 2.4,
        "counting": "macs 141.3 M (-0.5%), conv_fc_macs 138.1 M; SE adds 0.62 M params (the "
        "paper's +0.6 M) to 1.86 M, 2.48 M in all (printed 2.4)",
    },
}


def measure(name: str) -> dict[str, Any]:
    """Input size, params and multiply-adds of the registered model ``name``, by senet.profile."""
    from senet.models import create_model
    from senet.profiling.counter import profile

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


def load_golden(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The stored table (``path``, default ``GOLDEN_PATH``): model name -> {input_size, params,
    conv_fc_macs[, macs, ...]}."""
    return json.loads((path or GOLDEN_PATH).read_text())["models"]


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


def write_golden(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Measure every registered model and rewrite ``path`` (default ``GOLDEN_PATH``), keeping
    columns measured elsewhere."""
    from senet.models import list_models

    path = path or GOLDEN_PATH
    old = load_golden(path) if path.is_file() else {}
    models = {}
    for name in list_models():
        extra = {k: v for k, v in old.get(name, {}).items() if k not in (*MEASURED, "paper")}
        paper = {"paper": PAPER[name]} if name in PAPER else {}
        models[name] = {**measure(name), **extra, **paper}
    doc = {
        "about": (
            "params, conv_fc_macs (conv + linear multiply-adds), macs (the SE paper's GFLOPs "
            "convention) and attention_macs of every senet model for one image of input_size, "
            "counted by senet.profile; regenerate with `senet models --write`"
        ),
        "torch": torch.__version__.split("+")[0],
        "models": models,
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return models


def check_golden(path: Path | None = None) -> list[str]:
    """Measure every model of the stored table again: one line per model whose params or
    multiply-adds now differ from the stored ones (empty when the table is current)."""
    changed = []
    for name, row in load_golden(path).items():
        now = measure(name)
        diffs = [f"{k} {row.get(k)} -> {now[k]}" for k in MEASURED if now[k] != row.get(k)]
        if diffs:
            changed.append(f"{name}: {', '.join(diffs)}")
    return changed
