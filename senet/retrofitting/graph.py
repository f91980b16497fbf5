"""A module's traced forward (``torch.fx``) and the concatenations found in it."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from senet.retrofitting.op_kinds import (
    ACT_NAMES,
    ADD_FUNCTIONS,
    CAT_NAMES,
    CONV_FUNCTION_NAMES,
    NORMS,
    heavy_count,
    op_name,
    upstream,
)


class GraphView:
    """A traced forward with the node predicates the classifier needs."""

    def __init__(self, owner: nn.Module, graph: fx.Graph) -> None:
        self.owner = owner
        self.graph = graph
        self.nodes = list(graph.nodes)
        self.inputs = [n for n in self.nodes if n.op == "placeholder"]
        self.output = next(n for n in self.nodes if n.op == "output")

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.owner.get_submodule(node.target) if node.op == "call_module" else None

    def is_act(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            m = self.module(node)
            return type(m).__module__ == "torch.nn.modules.activation"
        if node.op in ("call_function", "call_method"):
            return op_name(node.target) in ACT_NAMES
        return False

    def is_norm(self, node: fx.Node) -> bool:
        m = self.module(node)
        return m is not None and (isinstance(m, NORMS) or "Norm" in type(m).__name__)

    def is_pass(self, node: fx.Node) -> bool:
        """Identity-like at inference: nn.Identity, dropout, drop-path, drop-block."""
        m = self.module(node)
        if m is None:
            return False
        name = type(m).__name__
        return isinstance(m, (nn.Identity, nn.modules.dropout._DropoutNd)) or "Drop" in name

    def is_heavy(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return heavy_count(self.module(node)) > 0
        return node.op == "call_function" and op_name(node.target) in CONV_FUNCTION_NAMES

    def is_add(self, node: fx.Node) -> bool:
        if node.op == "call_function" and node.target in ADD_FUNCTIONS:
            return True
        return node.op == "call_method" and node.target in ("add", "add_")

    def is_constant_scale(self, node: fx.Node) -> bool:
        """``t * c`` for a Python number ``c``, with ``t`` a node (residual scaling)."""
        is_mul = (node.op == "call_function" and node.target in (operator.mul, torch.mul)) or (
            node.op == "call_method" and node.target == "mul"
        )
        if not is_mul or len(node.args) != 2:
            return False
        a, b = node.args
        number = (int, float)
        return isinstance(a, fx.Node) and isinstance(b, number) and not isinstance(b, bool)

    def conv(self, node: fx.Node) -> nn.Conv2d | None:
        m = self.module(node)
        return m if isinstance(m, nn.Conv2d) else None

    def output_value(self) -> fx.Node | None:
        value = self.output.args[0]
        return value if isinstance(value, fx.Node) else None

    def strip_tail(self, node: fx.Node) -> tuple[fx.Node, list[fx.Node]]:
        """Walk back from ``node`` over activations and identity-like ops; return the first other
        node and the ops walked over (last first)."""
        tail = []
        while (self.is_act(node) or self.is_pass(node)) and isinstance(node.args[0], fx.Node):
            tail.append(node)
            node = node.args[0]
        return node, tail

    def ancestors(self, node: fx.Node) -> set[fx.Node]:
        """``node`` and every node it depends on."""
        return upstream(node, lambda n: n.all_input_nodes)

    def unit_end(self, node: fx.Node) -> fx.Node:
        """Follow a conv's single-use chain of norm, activation and identity-like ops."""
        while len(node.users) == 1:
            (user,) = node.users
            if (self.is_norm(user) or self.is_act(user) or self.is_pass(user)) and user.args[
                :1
            ] == (node,):
                node = user
            else:
                break
        return node

    def describe(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return str(node.target)
        if node.op == "placeholder":
            return f"input {node.target}"
        return op_name(node.target)


def find_cat(view: GraphView) -> list[fx.Node] | None:
    """The operands of a channel concatenation feeding the output, if there is one."""
    out = view.output_value()
    if out is None:
        return None
    node, _ = view.strip_tail(out)
    return cat_operands(node)


def cat_operands(node: fx.Node) -> list[fx.Node] | None:
    """The operands of ``node`` if it is a channel concatenation of two or more tensors."""
    if node.op != "call_function" or op_name(node.target) not in CAT_NAMES:
        return None
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if dim not in (1, -3) or not isinstance(tensors, (list, tuple)):
        return None
    operands = [t for t in tensors if isinstance(t, fx.Node)]
    return operands if len(operands) == len(tensors) and len(operands) >= 2 else None


@dataclass
class InlineBranches:
    """An Inception module written inline in a larger forward (Cadene's BN-Inception has one
    flat forward): branches of one tensor, concatenated, used nowhere else."""

    cat: fx.Node
    source: fx.Node
    region: set[fx.Node]  # every node of the branches, the concat excluded
    branches: int


def find_inline_branches(view: GraphView) -> list[InlineBranches]:
    """The outermost inline multi-branch modules of ``view``, in graph order.

    A concatenation is one if its operands' exclusive ancestors (the branches) read a single
    tensor from outside, are read by nothing but the concat, hold convs on at least two
    branches and none of the operands is that tensor itself (that would be dense aggregation).
    """
    found: list[InlineBranches] = []
    for node in view.nodes:
        operands = cat_operands(node)
        if operands is None:
            continue
        ancestors = [view.ancestors(op) for op in operands]
        common = set.intersection(*ancestors)
        region = set.union(*ancestors) - common
        if any(op not in region for op in operands):
            continue  # one operand feeds another: not parallel branches
        sources = {
            src
            for n in region
            for src in n.all_input_nodes
            if src not in region and src.op != "get_attr"
        }
        if len(sources) != 1:
            continue
        (source,) = sources
        if any(view.strip_tail(op)[0] is source for op in operands):
            continue
        if any(user not in region and user is not node for n in region for user in n.users):
            continue
        heavy = sum(any(view.is_heavy(n) for n in anc - common) for anc in ancestors)
        if heavy >= 2:
            found.append(InlineBranches(node, source, region, len(operands)))
    inner = {b.cat for b in found for other in found if b.cat in other.region}
    return [b for b in found if b.cat not in inner]


def record_shapes(
    module: nn.Module, graph: fx.Graph, *args: torch.Tensor
) -> dict[fx.Node, tuple[int, ...]]:
    """Shape of every tensor node of ``graph`` when ``module`` runs on ``args``."""
    shapes: dict[fx.Node, tuple[int, ...]] = {}

    class _Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> object:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor):
                shapes[n] = tuple(result.shape)
            return result

    _Recorder(module, graph=graph).run(*args)
    return shapes
