"""What retrofit did: the sites it filled, the modules it skipped and why, and the cost."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Site:
    """One inserted (or replaced) attention module."""

    unit: str  # module path of the unit: "layer1.0"; for a conv unit, the conv's path
    kind: str  # residual | multi-branch | dense-layer | block | conv-unit | module | existing
    strategy: str  # standard | pre | post | identity | conv3x3 | output | replace
    location: str  # where inside the unit, in words
    attn_path: str  # path of the new module: "layer1.0.attn"
    channels: int  # C of the feature map it recalibrates
    stage: int | None  # 1 = first resolution of the network, +1 per halving (paper Table 13)
    params: int  # parameters it adds (with its identity blend, if any)
    init: str = "default"  # default | gate=1 (identity point) | blend (identity blend)


@dataclass(frozen=True)
class Skipped:
    """A module that was looked at and left alone, and why."""

    path: str
    reason: str


@dataclass
class RetrofitReport:
    """What :func:`retrofit` did (or, with ``dry_run=True``, would do)."""

    model: str
    attn: str
    strategy: str
    init: str
    input_size: tuple[int, int, int]
    sites: list[Site]
    skipped: list[Skipped]
    existing: list[str]  # attention modules the model already had: "path (Class)"
    base_params: int
    added_params: int
    applied: bool
    # Multiply-adds at ``input_size`` in the paper's convention, counted by senet.profile.
    added_macs: int | None = None
    base_macs: int | None = None

    @property
    def params(self) -> int:
        """Parameter count of the retrofitted model."""
        return self.base_params + self.added_params

    def __len__(self) -> int:
        return len(self.sites)

    def summary(self) -> str:
        """One line: how many sites, what they add."""
        pct = 100.0 * self.added_params / self.base_params if self.base_params else 0.0
        verb = "added" if self.applied else "would add"
        line = (
            f"{len(self.sites)} x {self.attn} ({self.strategy}, init={self.init}) {verb} "
            f"{self.added_params:,} params (+{pct:.2f}% of {self.base_params:,})"
        )
        if self.added_macs is not None:
            line += f", {self.added_macs:,} MACs"
            if self.base_macs:
                line += f" (+{100.0 * self.added_macs / self.base_macs:.2f}%)"
        return line

    def table(self) -> Any:
        """The sites as a ``rich.table.Table``."""
        from rich.table import Table

        c, h, w = self.input_size
        table = Table(
            title=f"retrofit {self.model}: {self.attn}, strategy={self.strategy}, "
            f"input {c}x{h}x{w}",
        )
        columns = ["#", "unit", "kind", "strategy", "where", "attention module", "C", "stage"]
        columns += ["params", "init"] if self.init != "default" else ["params"]
        numeric = ("#", "C", "stage", "params")
        for name in columns:
            table.add_column(name, justify="right" if name in numeric else "left")
        for i, s in enumerate(self.sites, 1):
            row = [str(i), s.unit, s.kind, s.strategy, s.location, s.attn_path, str(s.channels)]
            row += ["-" if s.stage is None else str(s.stage), f"{s.params:,}"]
            table.add_row(*row, *([s.init] if self.init != "default" else []))
        return table

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        yield self.table()
        yield self.summary()
        if self.existing:
            yield f"already had attention: {', '.join(self.existing)}"
        if self.skipped:
            yield f"skipped {len(self.skipped)}:"
            for s in self.skipped:
                yield f"  {s.path or '<model>'}: {s.reason}"

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=160, color_system=None, force_terminal=False)
        with console.capture() as capture:
            console.print(self)
        return capture.get().rstrip()
