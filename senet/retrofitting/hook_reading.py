"""Read a module whose forward cannot be traced by running it.

fx cannot trace a forward that unpacks a tensor's size (megvii's ShuffleNet v1 channel
shuffle) or branches on data. Such a unit is run once on a sample instead, recording which of
its children and which torch functions consumed which tensors: the path taken for this
instance (its stride is fixed) as a data-flow graph. A unit read this way can take attention
only on the output of one of its children or on its own output, since its forward cannot be
rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from senet.retrofitting.op_kinds import (
    ACT_NAMES,
    CAT_NAMES,
    CONV_FUNCTION_NAMES,
    heavy_count,
    upstream,
)
from senet.retrofitting.probe import Probe, random_input, reference_tensor, tensors_in


@dataclass(eq=False)
class RunNode:
    """One step of a recorded forward: the input, a child module call or a torch function."""

    op: str  # "input" | "module" | "function"
    target: str  # the child's name, or the function's name
    args: list[RunNode]
    heavy: int  # convs/linears: those of a child, 1 for a conv/linear function
    light: bool = False  # an activation / identity-like step (walked over at the tail)
    users: list[RunNode] = field(default_factory=list)

    def ancestors(self) -> set[RunNode]:
        return upstream(self, lambda n: n.args)


_RUN_ADDS = frozenset({"add", "add_", "__add__", "__iadd__", "__radd__"})
_RUN_PASS = frozenset({"__get__", "contiguous", "clone", "dropout"})


def _function_name(func: object) -> str:
    return getattr(func, "__name__", type(func).__name__)


class _Recording(TorchFunctionMode):
    """Records the torch functions a module's own forward calls (not its children's)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while a child module runs
        self.producer: dict[int, RunNode] = {}
        self.keep: list[torch.Tensor] = []  # holds every tensor seen, so ids stay unique

    def node_of(self, value: object) -> list[RunNode]:
        return [self.producer[id(t)] for t in tensors_in(value) if id(t) in self.producer]

    def produce(self, node: RunNode, value: object) -> None:
        for arg in node.args:
            arg.users.append(node)
        for t in tensors_in(value):
            self.keep.append(t)
            self.producer[id(t)] = node

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: object,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        result = func(*args, **(kwargs or {}))
        if self.depth == 0 and any(True for _ in tensors_in(result)):
            name = _function_name(func)
            inputs = self.node_of((args, list((kwargs or {}).values())))
            heavy = int(name in CONV_FUNCTION_NAMES)
            light = name in ACT_NAMES or name in _RUN_PASS
            self.produce(RunNode("function", name, inputs, heavy, light), result)
        return result


def run_graph(module: nn.Module, sample: torch.Tensor) -> tuple[RunNode, RunNode] | None:
    """Run ``module(sample)`` and return its (input, output) nodes, or None when the output is
    not one tensor or does not come from the input."""
    recording = _Recording()
    x = RunNode("input", "x", [], 0)
    recording.produce(x, sample)

    def pre_hook(child: nn.Module, args: tuple[object, ...]) -> None:
        recording.depth += 1

    def make_hook(name: str) -> Callable[..., None]:
        def hook(child: nn.Module, args: tuple[object, ...], output: object) -> None:
            recording.depth -= 1
            if recording.depth == 0:
                m_name = type(child).__module__
                light = m_name == "torch.nn.modules.activation" or isinstance(
                    child, (nn.Identity, nn.modules.dropout._DropoutNd)
                )
                node = RunNode("module", name, recording.node_of(args), heavy_count(child), light)
                recording.produce(node, output)

        return hook

    handles = []
    for name, child in module.named_children():
        handles.append(child.register_forward_pre_hook(pre_hook))
        handles.append(child.register_forward_hook(make_hook(name)))
    try:
        with recording:
            output = module(sample)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(output, torch.Tensor) or id(output) not in recording.producer:
        return None
    out = recording.producer[id(output)]
    return (x, out) if x in out.ancestors() else None


@dataclass
class RunReading:
    """What running an untraceable module showed."""

    kind: str  # "residual" | "multi-branch" | "undecided" | "container"
    branch_end: str | None = None  # residual: the child whose output ends the branch
    location: str | None = None
    why: str = ""  # undecided: why no site was chosen


def _strip_light(node: RunNode) -> RunNode:
    while node.light and len(node.args) == 1:
        node = node.args[0]
    return node


def _branch_end(end: RunNode, merge: str, probe_calls: Callable[[str], int]) -> RunReading:
    """A residual reading whose site is the child ``end``, or undecided with the reason."""
    if end.op != "module":
        return RunReading(
            "undecided",
            why=f"running it shows a residual {merge} whose branch ends in {end.target}(), not "
            "in a child module, so attention cannot go there without rewriting the forward; "
            "name the site with sites=[...]",
        )
    if probe_calls(end.target) != 1 or len(end.users) != 1:
        return RunReading(
            "undecided",
            why=f"running it shows a residual {merge} whose branch ends in {end.target}, which "
            "is called more than once or also used elsewhere; name the site with sites=[...]",
        )
    where = f"branch end: after {end.target}, before the {merge} (read by running it)"
    return RunReading("residual", end.target, where)


def read_by_running(module: nn.Module, probe: Probe) -> RunReading:
    """Classify an untraceable module by running it on a sample of its probed input shape."""
    in_shapes = probe.in_shapes.get(id(module), ())
    if len(in_shapes) != 1:
        return RunReading("container")
    try:
        ends = run_graph(module, random_input(in_shapes[0], reference_tensor(module)))
    except Exception:  # it ran in the probe; a failure here only means "cannot read it"
        return RunReading("container")
    if ends is None:
        return RunReading("container")
    x, out = ends
    children = dict(module.named_children())

    def calls(name: str) -> int:
        return probe.call_count(children[name])

    merge = _strip_light(out)
    operands = merge.args
    if merge.op != "function" or len(operands) < 2:
        return RunReading("container")
    ancestors = [op.ancestors() for op in operands]
    if any(x not in anc for anc in ancestors):
        return RunReading("container")
    common = set.intersection(*ancestors) - {x}
    # Conv count of each operand's own nodes; the rules are find_residual's and classify's.
    heavy = [sum(n.heavy for n in anc - common) for anc in ancestors]
    if any(n.heavy for n in common):
        return RunReading("container")  # a stack of units, not one
    with_convs = sum(h > 0 for h in heavy)
    if merge.target in _RUN_ADDS and len(operands) == 2 and with_convs == 1:
        return _branch_end(operands[heavy.index(max(heavy))], "add", calls)
    if merge.target in CAT_NAMES:
        if len(operands) == 2 and with_convs == 1 and max(heavy) >= 2 and x not in operands:
            branch = _strip_light(operands[heavy.index(max(heavy))])
            return _branch_end(branch, "concat with the shortcut", calls)
        if with_convs >= 2 and x not in operands:
            return RunReading("multi-branch", location="module output (read by running it)")
    return RunReading("container")
