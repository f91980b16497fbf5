"""The paper's recipes (``*.yaml``) and ablation grids (``ablations/*.yaml``), shipped inside the
package: ImageNet Tables 10-16, the CIFAR and Fashion-MNIST recipes, and one CPU-sized demo grid.

``senet train fashion_mnist_se_resnet20`` and ``senet ablate table10_reduction`` find them by
name; ``configs/NAME.yaml`` (the path in a clone before they moved here) works too. Studies run
with these (their grids and records) live outside the wheel, in the repository's ``experiments/``.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path

# Shipped files renamed in 0.2.0: the old name still finds the file, with a warning, until 0.3.0.
RENAMED = {"reduction_fashion_mnist": "demo_reduction"}


def packaged(name_or_path: str | Path, folder: str = "") -> Path | None:
    """The shipped file ``name_or_path`` names (``NAME``, ``NAME.yaml``, ``configs/NAME.yaml``
    or ``configs/ablations/NAME.yaml``), or None when senet ships no such file."""
    parts = Path(name_or_path).with_suffix(".yaml").parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    if len(parts) == 1 and folder:
        parts = (folder, *parts)
    stem = Path(parts[-1]).stem if parts else ""
    if stem in RENAMED:
        new = RENAMED[stem]
        warnings.warn(
            f"{stem!r} was renamed {new!r} in senet 0.2.0; the old name stops working in 0.3.0",
            FutureWarning,
            stacklevel=2,
        )
        parts = (*parts[:-1], f"{new}.yaml")
    path = Path(str(files(__name__).joinpath(*parts)))
    return path if path.is_file() else None


def names(folder: str = "") -> list[str]:
    """The shipped recipes (``folder=""``) or grids (``folder="ablations"``), by name."""
    root = Path(str(files(__name__)))
    return sorted(p.stem for p in (root / folder).glob("*.yaml"))
