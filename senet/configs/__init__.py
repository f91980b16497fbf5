"""Recipes (``*.yaml``) and ablation grids (``ablations/*.yaml``), shipped inside the package.

``senet train fashion_mnist_se_resnet20`` and ``senet ablate table10_reduction`` find them by
name; ``configs/NAME.yaml`` (the path in a clone before they moved here) works too.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def packaged(name_or_path: str | Path, folder: str = "") -> Path | None:
    """The shipped file ``name_or_path`` names (``NAME``, ``NAME.yaml``, ``configs/NAME.yaml``
    or ``configs/ablations/NAME.yaml``), or None when senet ships no such file."""
    parts = Path(name_or_path).with_suffix(".yaml").parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    if len(parts) == 1 and folder:
        parts = (folder, *parts)
    path = Path(str(files(__name__).joinpath(*parts)))
    return path if path.is_file() else None


def names(folder: str = "") -> list[str]:
    """The shipped recipes (``folder=""``) or grids (``folder="ablations"``), by name."""
    root = Path(str(files(__name__)))
    return sorted(p.stem for p in (root / folder).glob("*.yaml"))
