"""Ablation grid files: a base training recipe, axes to vary one at a time, and seeds.

A grid file (YAML)::

    name: demo_reduction                   # optional; default: the file name
    title: Reduction ratio r (Table 10)    # optional; heads the result table
    base: fashion_mnist_se_resnet20        # recipe: a shipped one's name, or a file path
                                           # relative to this file
    overrides: {train.epochs: 3}           # optional; applied to every point
    axes:                                  # every combination of the values is one point
      model.attn_kwargs.reduction: [2, 4, 8, 16, 32]
    baseline: {model.attn: none}           # optional extra point; deltas are against it
    seeds: [0, 1, 2]                       # each point runs once per seed

Without ``baseline`` the first point is the reference row. Every point's config is loaded and
validated before anything runs, so a bad key fails the whole grid up front.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from senet.config import Config, ConfigError, create_model_from_config, load_config
from senet.configs import names, packaged
from senet.train.optim import create_optimizer

GRID_KEYS = (
    "name",
    "title",
    "base",
    "overrides",
    "axes",
    "baseline",
    "seeds",
    "command_line",
    "fast_path",
)


class GridError(ConfigError):
    """A grid file that cannot run: what is wrong, and how to fix it."""


def format_value(value: Any) -> str:
    """A value as ``senet train`` reads it on the command line (``key=<this>``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _slug(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "-".join(_slug(v) for v in value) or "empty"
    text = "none" if value is None else format_value(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "empty"


@dataclass(frozen=True)
class GridPoint:
    """One training run of a grid: axis values (or the baseline's overrides) and a seed."""

    settings: tuple[tuple[str, Any], ...]  # (dotted key, value), in axis order
    seed: int
    is_baseline: bool = False

    @property
    def label(self) -> str:
        """The row this point belongs to, seeds pooled: ``reduction=8`` or ``baseline``."""
        if self.is_baseline:
            return "baseline"
        return ",".join(f"{key.rsplit('.', 1)[-1]}={_slug(v)}" for key, v in self.settings)

    @property
    def run_id(self) -> str:
        """A folder name unique within the grid."""
        return f"{self.label.replace(',', '__')}__seed={self.seed}"

    def overrides(self) -> list[str]:
        """``key=value`` strings for ``senet train``, the seed included."""
        items = [f"{key}={format_value(value)}" for key, value in self.settings]
        return [*items, f"train.seed={self.seed}"]


@dataclass
class Grid:
    """A validated grid: the recipe, the shared overrides, and the expanded points."""

    name: str
    title: str
    base: Path
    overrides: dict[str, Any]
    axes: dict[str, list[Any]]
    baseline: dict[str, Any] | None
    seeds: list[int]
    source: Path | None = None
    points: list[GridPoint] = field(default_factory=list)
    # ``key=value`` given to ``senet ablate`` on top of the file; the saved grid.yaml keeps them,
    # so a results folder says what ran, and rerunning that file runs the same points.
    command_line: list[str] = field(default_factory=list)
    # The train settings the grid left ``auto``, settled once for every point before any ran
    # (``senet.ablation.runner``): {train.amp: bf16, train.channels_last: true, ...}. After the
    # file's overrides, before the command line's and the points' own: explicit values win.
    fast_path: dict[str, Any] = field(default_factory=dict)

    def common_overrides(self) -> list[str]:
        from_file = [f"{key}={format_value(value)}" for key, value in self.overrides.items()]
        settled = [f"{key}={format_value(value)}" for key, value in self.fast_path.items()]
        return [*from_file, *settled, *self.command_line]

    def point_config(self, point: GridPoint) -> Config:
        """The full training config of ``point`` (validated)."""
        return load_config(self.base, [*self.common_overrides(), *point.overrides()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "base": str(self.base),
            "overrides": self.overrides,
            "axes": self.axes,
            "baseline": self.baseline,
            "seeds": self.seeds,
            **({"command_line": self.command_line} if self.command_line else {}),
            **({"fast_path": self.fast_path} if self.fast_path else {}),
        }


def load_grid(path: str | Path, extra_overrides: list[str] = ()) -> Grid:
    """Read, expand and validate a grid file (a path, or a shipped grid's name such as
    ``table10_reduction``); ``extra_overrides`` apply to every point: they become the grid's
    ``command_line``."""
    given = path
    path = Path(path) if Path(path).is_file() else packaged(path, "ablations")
    if path is None:
        raise GridError(
            f"grid file {str(given)!r} does not exist, and senet ships no grid by that name "
            f"(grids: {', '.join(names('ablations'))})"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise GridError(f"{path}: not valid YAML: {e}") from None
    grid = grid_from_dict(data, source=path)
    grid.command_line += extra_overrides
    for point in grid.points:
        try:
            config = grid.point_config(point)
            # Build the model and its optimiser on the meta device (no memory, no time): a model
            # that cannot be built, or an optimiser setting it cannot take (attn_weight_decay
            # without attention), fails the grid now, not hours into it.
            with torch.device("meta"):
                model, _ = create_model_from_config(
                    replace(config.model, weights=None),  # weights are read when a point runs
                    num_classes=config.model.num_classes or 10,
                    in_chans=config.model.in_chans or 3,
                )
                create_optimizer(model, config.optim, config.optim.lr)
        except ConfigError as e:
            raise GridError(f"{path}: point {point.run_id}: {e}") from None
    return grid


def resolve_base(base: str | Path, source: Path | None) -> Path:
    """The recipe a grid's ``base`` names, as ``senet train`` reads its argument: a file
    (relative to the grid file), else the name of a shipped recipe (``fashion_mnist_se_resnet20``).

    A grid read back from a results folder (``source`` None) keeps ``base`` as it was saved: the
    study never loads it, and it may name a file on the machine that ran the grid.
    """
    if not isinstance(base, str | Path) or not str(base):
        raise GridError(f"{source or 'grid'}: 'base' must be a recipe name or a path, got {base!r}")
    if source is None or Path(base).is_absolute():
        return Path(base)
    beside = source.parent / base
    if beside.is_file():
        return beside
    shipped = packaged(base)
    if shipped is not None:
        return shipped
    raise GridError(
        f"{source}: base {str(base)!r} is neither a file beside the grid ({beside} does not "
        f"exist) nor a shipped recipe (recipes: {', '.join(names())}); give a path relative to "
        "the grid file or a recipe name"
    )


def grid_from_dict(data: Any, *, source: Path | None = None) -> Grid:
    """Check the grid's structure and expand its points (configs are checked by load_grid)."""
    where = str(source) if source else "grid"
    if not isinstance(data, dict):
        raise GridError(f"{where}: expected a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(GRID_KEYS)}")
    if "base" not in data or "axes" not in data:
        raise GridError(f"{where}: needs 'base' (a training config) and 'axes' (keys to vary)")
    base = resolve_base(data["base"], source)
    axes = data["axes"]
    if not isinstance(axes, dict) or not axes:
        raise GridError(f"{where}: 'axes' must map config keys to lists of values, got {axes!r}")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: axis {key!r} is empty or not a list; give it >= 1 value")
        seen = [json.dumps(v, sort_keys=True) for v in values]
        duplicates = sorted({v for v in seen if seen.count(v) > 1})
        if duplicates:
            raise GridError(
                f"{where}: axis {key!r} repeats {', '.join(duplicates)}: duplicate points"
            )
    overrides = data.get("overrides") or {}
    baseline = data.get("baseline")
    if not isinstance(overrides, dict):
        raise GridError(f"{where}: 'overrides' must be a mapping of config keys to values")
    if baseline is not None and (not isinstance(baseline, dict) or not baseline):
        raise GridError(f"{where}: 'baseline' must be a non-empty mapping of config keys to values")
    clash = sorted(set(overrides) & set(axes))
    if clash:
        raise GridError(f"{where}: {clash} set in both 'overrides' and 'axes'; keep one")
    if "train.seed" in axes or "train.seed" in overrides:
        raise GridError(f"{where}: set seeds with the grid's 'seeds' list, not train.seed")
    seeds = data.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise GridError(
            f"{where}: 'seeds' must be a non-empty list of distinct integers, got {seeds!r}"
        )
    points = []
    for combo in itertools.product(*axes.values()):
        settings = tuple(zip(axes, combo, strict=True))
        points += [GridPoint(settings, seed) for seed in seeds]
    if baseline is not None:
        as_point = tuple(baseline.items())
        if any(p.settings == as_point for p in points):
            raise GridError(f"{where}: the baseline {baseline} is also an axis point: duplicate")
        points += [GridPoint(as_point, seed, is_baseline=True) for seed in seeds]
    command_line = data.get("command_line") or []
    if not isinstance(command_line, list) or not all(
        isinstance(o, str) and "=" in o for o in command_line
    ):
        raise GridError(f"{where}: 'command_line' must be a list of key=value strings")
    fast_path = _fast_path_field(data, where)
    name = str(data.get("name") or (source.stem if source else "grid"))
    return Grid(
        name=name,
        title=str(data.get("title") or name),
        base=base,
        overrides=overrides,
        axes=axes,
        baseline=baseline,
        seeds=seeds,
        source=source,
        points=points,
        command_line=command_line,
        fast_path=fast_path,
    )


def _fast_path_field(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The grid's settled ``fast_path`` (a results folder's grid.yaml has one), checked."""
    fast_path = data.get("fast_path") or {}
    if not isinstance(fast_path, dict) or not all(
        k in ("train.amp", "train.channels_last", "train.compile") for k in fast_path
    ):
        raise GridError(
            f"{where}: 'fast_path' maps train.amp, train.channels_last and train.compile to the "
            f"values settled for every point, got {fast_path!r}"
        )
    return fast_path
