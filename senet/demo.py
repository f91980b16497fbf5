"""What `make demo` runs: SE-ResNet-20 against ResNet-20 on real Fashion-MNIST, same budget.

`senet demo --tour` keeps the older, seconds-long tour of the attention modules, and ends with
what the full study found (the summary shipped with senet; no training).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from rich.table import Table

from senet.layers import attention_names, create_attn

if TYPE_CHECKING:
    from senet.config import Config
    from senet.train.fast_path import FastPath

RECIPE = "fashion_mnist_se_resnet20"  # shipped in senet/configs, found by name
MODELS = ("se_resnet20_cifar", "resnet20_cifar")
# What the full-budget depth study found (docs/results/fashion_mnist.md), shipped with senet and
# generated from the study's records in the repository by
#   senet study experiments/fashion_mnist/records/fashion_mnist_depth \
#       --earlier experiments/fashion_mnist/not_kept/fashion_mnist_depth.json \
#       --summary senet/demo_summary.json
STUDY_SUMMARY = Path(str(files("senet").joinpath("demo_summary.json")))
STUDY_PAGE = "docs/results/fashion_mnist.md"
# The demo's training time on this machine, both models together: its image budget is set from
# the step time measured when the fast path is settled (2-core CPU: about 6 minutes in all).
TRAIN_SECONDS = 300.0
EPOCHS = 3
# Both models train the same way: a 3-epoch run never repays a compile warm-up.
EAGER = ("train.compile=false",)


def attention_tour(channels: int = 256, size: int = 56, seed: int = 0) -> Table:
    """Params of each attention module and statistics of its output on a random feature map.

    The map imitates a post-ReLU ResNet stage-2 activation (256 x 56 x 56, non-negative).
    """
    torch.manual_seed(seed)
    x = torch.randn(2, channels, size, size).relu()
    table = Table(title=f"Attention modules on a {channels}x{size}x{size} feature map (batch 2)")
    for column in ("module", "params", "out mean", "out std", "mean gate (out/in)"):
        table.add_column(column, justify="left" if column == "module" else "right")
    table.add_row("none (input)", "0", f"{x.mean():.4f}", f"{x.std():.4f}", "1.000")
    for name in attention_names():
        module = create_attn(name, channels).eval()
        with torch.inference_mode():
            y = module(x)
        params = sum(p.numel() for p in module.parameters())
        table.add_row(
            name, f"{params:,}", f"{y.mean():.4f}", f"{y.std():.4f}", f"{(y.sum() / x.sum()):.3f}"
        )
    return table


def run_tour() -> None:
    """The attention modules on one feature map, then what the full study found."""
    console = Console()
    console.print(attention_tour())
    console.print(study_summary_text(load_study_summary()))


def ensure_fashion_mnist(console: Console) -> None:
    """Find Fashion-MNIST; else install Debian's package (as root) or download with torchvision."""
    from senet.data import DataError, prepare_fashion_mnist

    try:
        prepare_fashion_mnist()
        return
    except DataError:
        pass
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        console.print("Fashion-MNIST missing: apt-get install dataset-fashion-mnist ...")
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"],
        ):
            if subprocess.run(cmd, check=False).returncode != 0:
                break
        try:
            prepare_fashion_mnist()
            return
        except DataError:
            console.print("the Debian package did not provide it; trying torchvision's download")
    else:
        console.print("Fashion-MNIST missing (not root or no apt): trying torchvision's download")
    prepare_fashion_mnist(download=True)  # raises a DataError naming both ways if offline


def run_demo(out: str | Path = "runs/demo", overrides: list[str] | None = None) -> list[dict]:
    """Train both models with the recipe's budget, print the comparison, return its rows."""
    from senet.evaluation.compare import compare_runs
    from senet.train import train

    console = Console()
    ensure_fashion_mnist(console)
    out = Path(out)
    configs = demo_configs(out, list(overrides or []))
    for config in configs:
        console.rule(f"[bold]{config.model.name}")
        train(config)
    rows, _ = compare_runs([out / name for name in MODELS], plot_path=out / "compare.png")
    console.print(demo_table(rows))
    se, base = rows
    console.print(
        f"SE vs baseline: {se['final_top1'] - base['final_top1']:+.2f} points test top-1, "
        f"{100 * (se['params'] / base['params'] - 1):+.1f}% params, "
        f"{100 * (se['macs'] / base['macs'] - 1):+.2f}% MACs, "
        f"{100 * (base['median_img_s'] / se['median_img_s'] - 1):+.0f}% time per image "
        f"(median epoch). One seed each. Curves: {out / 'compare.png'}"
    )
    console.rule("[bold]the full study")
    console.print(study_summary_text(load_study_summary()))
    # The paper's Sec. 7 on the SE model just trained: what its gates learned, block by block.
    from senet.analysis import analysis_table, analyze_weights, saturation_summary
    from senet.evaluation import EvalSource

    console.rule("[bold]gate analysis")
    se_run = out / MODELS[0]
    report = analyze_weights(EvalSource(MODELS[0], se_run / "best.safetensors", "fashion_mnist"))
    console.print(analysis_table(report))
    console.print(saturation_summary(report))
    console.print(f"plots: {report.output_dir}/class_gates.png, specificity.png")
    return rows


def demo_table(rows: list[dict]) -> Table:
    """The comparison the demo prints: fits an 80-column log."""
    first = rows[0]
    table = Table(
        title=f"Fashion-MNIST, {first['epochs']} epochs each; test set ({first['val_images']:,} "
        "images)"
    )
    for column in ("model", "test top-1", "params", "MACs", "wall time", "img/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['final_top1']:.2f}%",
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:.2f} M",
            f"{r['wall_seconds']:.0f} s",
            f"{r['median_img_s']:,.0f}",
        )
    return table


def demo_configs(out: Path, overrides: list[str]) -> list[Config]:
    """Both models' configs in one mode, settled by timing their steps once (never from CPU
    flags), with an image budget that trains both in about ``TRAIN_SECONDS`` on this machine
    (unless ``overrides`` set ``data.train_size`` or ``train.epochs``)."""
    from senet.train import load_config
    from senet.train.fast_path import settle_for_runs

    def configs(extra: list[str]) -> list[Config]:
        return [
            load_config(RECIPE, [*EAGER, f"model.name={name}", f"output_dir={out / name}", *extra])
            for name in MODELS
        ]

    found = configs(overrides)
    fast = settle_for_runs(found[0].train, found)
    Console().print("\n".join(fast.log_lines()))
    budget = []
    if not any(o.startswith(("data.train_size=", "train.epochs=")) for o in overrides):
        budget = [f"data.train_size={image_budget(fast, found[0].data.batch_size)}"]
        budget.append(f"train.epochs={EPOCHS}")
    settled = [f"train.{key}={str(value).lower()}" for key, value in fast.settings().items()]
    return configs([*budget, *settled, *overrides])


def image_budget(fast: FastPath, batch_size: int) -> int:
    """Training images per model so that both train ``EPOCHS`` epochs in ``TRAIN_SECONDS``, from
    the measured step times of the settled mode (a multiple of 1000, 5,000 to 60,000)."""
    from senet.models.race import RaceResult

    label = fast.mode.label
    steps = [RaceResult.from_list(rows).step_s(label) for rows in fast.timings.values()]
    if not steps or None in steps:  # not measured (fallback): the recipe's own budget
        return 20_000
    seconds_per_image = sum(steps) / batch_size  # both models, one image each
    images = TRAIN_SECONDS / (EPOCHS * seconds_per_image)
    return int(min(60_000, max(5_000, round(images, -3))))


def load_study_summary(path: str | Path = STUDY_SUMMARY) -> dict | None:
    """The full study's summary (``senet.ablation.study.demo_summary``), or None when absent."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def study_summary_text(study: dict | None) -> str:
    """What the full study found, SE - baseline per depth, or plainly that it has not run."""
    if study is None or study.get("status") == "not yet run" or not study.get("pairs"):
        return (
            f"The full-budget study ({STUDY_PAGE}) has no results yet: nothing to compare this "
            "short run with. Its commands are in that file."
        )
    recipe = study.get("recipe") or {}
    not_kept = set(study.get("from_earlier") or [])
    lines = [
        f"The full study ({STUDY_PAGE} in the senet repository; {study['status']}, "
        f"{study['finished_runs']}/{study['total_runs']} runs, seeds "
        f"{', '.join(map(str, study['seeds']))}, {recipe.get('train_images') or '?'} images x "
        f"{recipe.get('epochs') or '?'} epochs):"
    ]
    cells = {c["label"]: c for c in study["cells"]}
    for p in study["pairs"]:
        arm, ref = cells.get(p["arm"], {}), cells.get(p["reference"], {})
        if all(_not_run(cell) for cell in (arm, ref)):
            lines.append(f"  {p['name']}: not run yet")
            continue
        difference = (
            f"SE - baseline not given until every seed is in: {p['shown']}"
            if p["verdict"] == "incomplete"
            else f"SE - baseline {p['shown']} points (95% CI): {p['verdict']}"
        )
        gone = " (runs not kept)" if {p["arm"], p["reference"]} & not_kept else ""
        lines.append(
            f"  {p['name']}: baseline {_percent(ref)}, SE {_percent(arm)}, {difference}{gone}"
        )
    return "\n".join(lines)


def _not_run(cell: dict) -> bool:
    """No seed of the cell has run (finished or failed); ``top1`` maps seed -> top-1."""
    return not cell.get("top1") and not cell.get("failed")


def _percent(cell: dict) -> str:
    shown = cell.get("shown", "?")
    return shown if shown.startswith("missing") or shown == "?" else f"{shown}%"
