"""Excitation statistics per class and depth: the paper's Sec. 7 look inside the gates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from senet.analysis.hidden import HiddenRange, hidden_activation_of
from senet.layers import CBAM, SCSE, outermost_attention

# Where the channel gate lives in senet's modules (``gate``), torchvision's SqueezeExcitation
# (``scale_activation``) and Cadene's SEModule (``sigmoid``); timm's SEModule also uses ``gate``.
_GATE_ATTRIBUTES = ("gate", "scale_activation", "sigmoid")


def channel_gate_of(module: nn.Module) -> nn.Module | None:
    """The submodule whose output is ``module``'s channel gate, or None if it has none."""
    if isinstance(module, CBAM):
        return module.channel_gate.gate
    if isinstance(module, SCSE):
        return module.cse.gate
    for attribute in _GATE_ATTRIBUTES:
        sub = getattr(module, attribute, None)
        if isinstance(sub, nn.Module):
            return sub
    return None


def attention_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Outermost attention modules of ``model`` in definition order (shallow to deep)."""
    return outermost_attention(model)


@dataclass
class BlockGates:
    """Streaming per-class sums of one block's gate vectors (float64, so nothing drifts)."""

    name: str
    channels: int
    num_classes: int
    count: torch.Tensor = field(init=False)
    total: torch.Tensor = field(init=False)
    total_sq: torch.Tensor = field(init=False)
    hidden: HiddenRange | None = None  # the excitation's hidden units, where it has them

    def __post_init__(self) -> None:
        self.count = torch.zeros(self.num_classes, dtype=torch.float64)
        self.total = torch.zeros(self.num_classes, self.channels, dtype=torch.float64)
        self.total_sq = torch.zeros(self.num_classes, self.channels, dtype=torch.float64)

    def add(self, gates: torch.Tensor, labels: torch.Tensor) -> None:
        """Accumulate gates (N, C) of images with integer ``labels`` (N,)."""
        gates = gates.double().cpu()
        labels = labels.long().cpu()
        self.count.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))
        self.total.index_add_(0, labels, gates)
        self.total_sq.index_add_(0, labels, gates.square())

    @property
    def seen_classes(self) -> torch.Tensor:
        return self.count > 0

    def hidden_counts(self) -> dict[str, int | None]:
        """``hidden_units`` and ``dead_units``; both None where the excitation has no hidden layer."""
        if self.hidden is None:
            return {"hidden_units": None, "dead_units": None}
        return {"hidden_units": self.hidden.units, "dead_units": self.hidden.dead()}

    def class_mean(self) -> torch.Tensor:
        """(K, C) mean gate per class; NaN rows for classes never seen."""
        return self.total / self.count[:, None]

    def class_std(self) -> torch.Tensor:
        """(K, C) population standard deviation of the gate within each class."""
        var = self.total_sq / self.count[:, None] - self.class_mean().square()
        return var.clamp_min(0).sqrt()

    def mean(self) -> torch.Tensor:
        """(C,) mean gate over all images."""
        return self.total.sum(0) / self.count.sum()

    def std(self) -> torch.Tensor:
        """(C,) standard deviation of the gate over all images."""
        var = self.total_sq.sum(0) / self.count.sum() - self.mean().square()
        return var.clamp_min(0).sqrt()

    def specificity(self) -> float:
        """Class specificity in [0, 1]: the between-class share of the gate variance (eta^2).

        Per channel, SS_between / SS_total over all images, averaged over channels that vary at
        all. 0: the class means coincide (class-agnostic gates, the paper's early layers);
        1: the gate is fixed within each class and differs between classes.
        """
        n = self.count.sum()
        seen = self.seen_classes
        grand = self.mean()
        between = (self.count[seen, None] * (self.class_mean()[seen] - grand).square()).sum(0)
        total = self.total_sq.sum(0) - n * grand.square()
        varying = total > 1e-12 * n
        if not varying.any():
            return 0.0
        return float((between[varying] / total[varying]).clamp(0, 1).mean())


@dataclass
class GateStatistics:
    """Per-block gate statistics of a model over a labelled dataset."""

    blocks: list[BlockGates]
    class_names: list[str]

    def block(self, name: str) -> BlockGates:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(f"no attention block {name!r}; blocks: {[b.name for b in self.blocks]}")

    def to_dict(self) -> dict:
        """JSON-ready summary: per block, specificity, and mean/std gate per class and overall."""
        out = []
        for depth, b in enumerate(self.blocks):
            means, stds = b.class_mean(), b.class_std()
            out.append(
                {
                    "name": b.name,
                    "depth": depth,
                    "channels": b.channels,
                    "specificity": b.specificity(),
                    "mean_gate": float(b.mean().mean()),
                    "gate_std": float(b.std().mean()),
                    **b.hidden_counts(),
                    "mean": b.mean().tolist(),
                    "std": b.std().tolist(),
                    "class_mean": {
                        self.class_names[k]: means[k].tolist()
                        for k in range(b.num_classes)
                        if b.count[k] > 0
                    },
                    "class_std": {
                        self.class_names[k]: stds[k].tolist()
                        for k in range(b.num_classes)
                        if b.count[k] > 0
                    },
                }
            )
        return {"class_names": self.class_names, "blocks": out}


@torch.inference_mode()
def collect_gates(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    class_names: list[str] | None = None,
    device: str | torch.device = "cpu",
    max_batches: int | None = None,
) -> GateStatistics:
    """Run ``model`` (in eval mode) over labelled ``batches`` and gather every channel gate.

    Gates with spatial extent (NoSqueeze, local Gather-Excite) are averaged over H x W, so each
    image gives one C-vector per block, as in the paper's Fig. 6. Where the excitation has a
    hidden layer, each block also records its hidden units' output range (dead units).
    """
    blocks = attention_blocks(model)
    sites = [(name, channel_gate_of(m)) for name, m in blocks]
    sites = [(name, gate) for name, gate in sites if gate is not None]
    gated = {name for name, _ in sites}
    hidden_acts = [(name, hidden_activation_of(m)) for name, m in blocks if name in gated]
    hidden_acts = [(name, act) for name, act in hidden_acts if act is not None]
    if not sites:
        raise ValueError(
            f"{type(model).__name__} has no attention module with a channel gate to analyse; "
            "build it with attn='se' (or cbam, eca, ge, scse), or retrofit one with senet.retrofit"
        )
    outputs: dict[str, torch.Tensor] = {}
    stats: dict[str, BlockGates] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
            if name in outputs:
                raise RuntimeError(f"attention block {name!r} ran twice in one forward pass")
            outputs[name] = out.float().mean(dim=tuple(range(2, out.dim())))

        return hook

    ranges: dict[str, HiddenRange] = {}

    def ranger(name: str):
        # CBAM runs its MLP twice per image (mean and max descriptors): both calls count.
        def hook(_module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
            ranges.setdefault(name, HiddenRange(out.shape[1])).add(out)

        return hook

    handles = [gate.register_forward_hook(recorder(name)) for name, gate in sites]
    handles += [act.register_forward_hook(ranger(name)) for name, act in hidden_acts]
    was_training = model.training
    model.eval()
    try:
        for index, (images, labels) in enumerate(batches):
            if max_batches is not None and index >= max_batches:
                break
            outputs.clear()
            model(images.to(device))
            for name, _ in sites:
                gates = outputs[name]
                if name not in stats:
                    stats[name] = BlockGates(name, gates.shape[1], num_classes)
                stats[name].add(gates, labels)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not stats:
        raise ValueError("collect_gates got no batches; pass a non-empty data loader")
    names = class_names or [str(k) for k in range(num_classes)]
    # Spatial-only gates (CBAM's spatial gate alone) give one "channel": nothing to compare.
    for name, block in stats.items():
        block.hidden = ranges.get(name)
    return GateStatistics([stats[name] for name, _ in sites if stats[name].channels > 1], names)
