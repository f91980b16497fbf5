"""senet.plots: the figures several stages draw, and the one-way imports that let them share it."""

import ast
import subprocess
import sys
from pathlib import Path

from senet.plots import plot_confusion, plot_curves, plot_overlay

PACKAGE = Path(__file__).resolve().parents[1] / "senet"


def imported_modules(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_plots_depend_on_models_only_and_stages_do_not_reach_into_train_for_figures():
    later_stages = ("senet.train", "senet.evaluation", "senet.analysis", "senet.ablation")
    assert not {m for m in imported_modules(PACKAGE / "plots") if m.startswith(later_stages)}
    for stage in ("evaluation", "analysis"):
        used = imported_modules(PACKAGE / stage)
        assert not {m for m in used if m.startswith(("senet.train.plots", "senet.train.stn"))}
    code = (
        "import sys, senet.plots; "
        "print(sorted(m for m in sys.modules if m.startswith(" + repr(later_stages) + ")))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_curves_overlay_and_confusion_are_pngs(tmp_path):
    rows = [
        {"epoch": e, "lr": 0.1 / e, "train_loss": 2 / e, "val_loss": 2.1 / e, "train_top1": 10 * e,
         "val_top1": 9 * e, "ema_val_top1": ""}
        for e in (1, 2, 3)
    ]  # fmt: skip
    plot_curves(rows, tmp_path / "curves.png", title="run")
    plot_overlay({"a": rows, "b": rows[:2]}, tmp_path / "overlay.png")
    plot_confusion([[3, 1], [0, 4]], ["cat", "dog"], tmp_path / "confusion.png")
    for name in ("curves.png", "overlay.png", "confusion.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
