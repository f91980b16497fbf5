"""Saturated gates: blocks whose excitation is ~constant, and what replacing them costs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from senet.analysis.gates import GateStatistics
from senet.layers import CBAM, SCSE, SpatialGate, SpatialSE


class ConstantGate(nn.Module):
    """Scale by a fixed per-channel vector: an SE block replaced by its mean gate (paper Sec. 7.2)."""

    # Blocks call a gate that fuses the residual add as attn(x, residual): take that form too.
    fuses_residual = True

    def __init__(self, gate: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("gate_value", gate.detach().float().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """x * gate, plus ``residual`` when the block hands its shortcut over."""
        out = x * self.gate_value.to(x.dtype)
        return out if residual is None else residual + out


# Modules that also gate space: a channel vector alone cannot stand in for them.
_NOT_CHANNEL_ONLY = (CBAM, SCSE, SpatialGate, SpatialSE)


@dataclass
class SaturationEntry:
    """One attention block: how constant its gate is, and whether it can be frozen."""

    name: str
    mean_gate: float  # average gate value over images and channels
    gate_std: float  # per-channel std over images, averaged over channels
    params: int  # parameters the block holds (saved by freezing it)
    saturated: bool  # gate_std below the threshold
    replaceable: bool  # a channel-only gate, so ConstantGate reproduces its mean effect
    hidden_units: int | None = None  # width of the excitation's hidden layer (None: has none)
    dead_units: int | None = None  # hidden units whose output was the same for every image


def saturation_table(
    model: nn.Module, stats: GateStatistics, *, threshold: float = 0.02
) -> list[SaturationEntry]:
    """Each analysed block with its gate spread; ``saturated`` where the spread < ``threshold``."""
    modules = dict(model.named_modules())
    entries = []
    for block in stats.blocks:
        module = modules[block.name]
        spread = float(block.std().mean())
        entries.append(
            SaturationEntry(
                name=block.name,
                mean_gate=float(block.mean().mean()),
                gate_std=spread,
                params=sum(p.numel() for p in module.parameters()),
                saturated=spread < threshold,
                replaceable=not isinstance(module, _NOT_CHANNEL_ONLY),
                **block.hidden_counts(),
            )
        )
    return entries


def freeze_gates(model: nn.Module, stats: GateStatistics, names: list[str]) -> nn.Module:
    """A copy of ``model`` whose blocks ``names`` are replaced by their mean gate vectors."""
    frozen = copy.deepcopy(model)
    for name in names:
        frozen.set_submodule(name, ConstantGate(stats.block(name).mean()))
    return frozen


def saturation_report(
    model: nn.Module,
    stats: GateStatistics,
    evaluate: Callable[[nn.Module], float],
    *,
    threshold: float = 0.02,
) -> dict:
    """Which blocks are saturated, and the accuracy before/after replacing them by constants.

    ``evaluate(model) -> top-1`` is run twice: on ``model`` and on the frozen copy.
    """
    table = saturation_table(model, stats, threshold=threshold)
    chosen = [e.name for e in table if e.saturated and e.replaceable]
    report = {
        "threshold": threshold,
        "blocks": [asdict(e) for e in table],
        "replaced": chosen,
        "params_saved": sum(e.params for e in table if e.name in chosen),
        "params_total": sum(p.numel() for p in model.parameters()),
        "top1_before": evaluate(model),
    }
    report["top1_after"] = evaluate(freeze_gates(model, stats, chosen)) if chosen else None
    return report


def saturation_digest(report: dict) -> dict:
    """A ``saturation_report`` (or its ``saturation.json``) in a few numbers, for a table of runs:
    blocks saturated, the blocks that vary and by how much, dead hidden units (summed over blocks
    with a hidden layer), the blocks with no live unit, and top-1 before/after freezing. The
    dead-unit fields are None in reports written before they were recorded."""
    blocks = report["blocks"]
    recorded = all("hidden_units" in b for b in blocks)
    with_hidden = [b for b in blocks if b.get("hidden_units")] if recorded else []
    return {
        "threshold": report["threshold"],
        "blocks": len(blocks),
        "saturated": sum(b["saturated"] for b in blocks),
        "varying": [
            {"name": b["name"], "gate_std": b["gate_std"]} for b in blocks if not b["saturated"]
        ],
        "mean_gate": [min(b["mean_gate"] for b in blocks), max(b["mean_gate"] for b in blocks)],
        "hidden_units": sum(b["hidden_units"] for b in with_hidden) if recorded else None,
        "dead_units": sum(b["dead_units"] for b in with_hidden) if recorded else None,
        "lifeless": (
            [b["name"] for b in with_hidden if b["dead_units"] == b["hidden_units"]]
            if recorded
            else None
        ),
        "top1_before": report["top1_before"],
        "top1_after": report["top1_after"],
    }
