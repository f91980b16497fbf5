"""Find where attention goes in a CNN nobody told us about.

A model is read module by module. Each module's forward is traced with ``torch.fx`` (children
kept as calls, plain ``nn.Sequential`` containers looked through) and classified by the shape of
its graph, not by its class:

- **residual unit**: the output is ``act(branch(x) + shortcut(x))`` where the branch holds the
  convolutions and the shortcut is ``x`` or a light projection; the two share nothing heavier
  than a pre-activation (BN, ReLU). SE goes at the strategy's place (paper Fig. 5). A concat
  of a conv-free shortcut and a branch of >= 2 convs (ShuffleNet's stride-2 unit) is one too.
- **multi-branch module**: the output is a channel concatenation of branches of ``x``
  (Inception modules). SE goes on the module output, as in SE-Inception (paper Fig. 2).
- **dense aggregation**: a concatenation that includes ``x`` itself (a DenseNet dense block);
  each dense layer whose output is concatenated is a unit, SE goes on the new features it adds.
- **block**: a module built from at least two conv layers that downsamples at most once and has
  no residual add (a non-residual MobileNet-v2 block, a DenseNet layer, a VGG stage written as
  a class). SE goes on its output.
- **conv unit**: one convolution with its norm and activation. These get SE only in *plain*
  networks, those with no units of the kinds above (VGG, MobileNet-v1-like stacks): the paper's
  SE-MobileNet adds ~0.5M parameters to MobileNet's 4.2M, which is SE after every pointwise
  conv. A depthwise conv unit followed by a conv is merged into that conv's unit. In networks
  that do have blocks, stem, transition and head convs are skipped.
- anything else is a **container**: its children are read the same way, and a concat of
  branches written inline in its forward (Cadene's flat BN-Inception) is a multi-branch module.

A module fx cannot trace is run once instead and read from the recorded data flow (see
:func:`read_by_running`); when that shows a unit but no place retrofit can reach, it is skipped
with the reason rather than guessed at from its children.

Stages are resolutions: stage 1 is the network's first feature-map resolution (the stem conv's
output), and each halving starts the next stage. For ResNet-50 that makes conv2_x..conv5_x
stages 2..5, the numbering of the paper's Table 13.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from torch import fx, nn
from torch.overrides import TorchFunctionMode

from senet.layers.detect import is_attention_module, outermost_attention
from senet.retrofit.insert import is_retrofitted, is_transparent, trace_module

UNIT_KINDS = ("residual", "multi-branch", "dense-layer", "block", "conv-unit")

_ACT_NAMES = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "silu",
        "silu_",
        "gelu",
        "hardswish",
        "hardsigmoid",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "selu",
        "celu",
        "mish",
        "sigmoid",
        "tanh",
        "hardtanh",
        "prelu",
        "softplus",
    }
)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_CAT_NAMES = frozenset({"cat", "concat", "concatenate"})
_POOL_NAMES = frozenset({"max_pool2d", "avg_pool2d", "lp_pool2d", "max_pool2d_with_indices"})
_CONV_FUNCTION_NAMES = frozenset({"conv1d", "conv2d", "conv3d", "linear"})
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)


def _name(target: object) -> str:
    return getattr(target, "__name__", str(target))


def _is_heavy_module(m: nn.Module) -> bool:
    return isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))


def heavy_count(module: nn.Module) -> int:
    """Number of conv and linear layers in ``module``, not counting those of attention modules."""
    if is_attention_module(module):
        return 0
    if _is_heavy_module(module):
        return 1
    return sum(heavy_count(child) for child in module.children())


def _downsampling_count(module: nn.Module) -> int:
    return sum(
        isinstance(m, _POOLS)
        or (isinstance(m, nn.modules.conv._ConvNd) and any(s > 1 for s in m.stride))
        for m in module.modules()
    )


_N = TypeVar("_N")


def _upstream(node: _N, inputs: Callable[[_N], Iterable[_N]]) -> set[_N]:
    """``node`` and every node reachable through ``inputs``: a traced graph's or a recorded run's
    dependencies, walked the same way."""
    seen: set[_N] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(inputs(n))
    return seen


@dataclass
class Probe:
    """What one forward pass with a sample input showed about every module (keyed by id)."""

    input_hw: tuple[int, int]
    out_shapes: dict[int, tuple[int, ...] | None] = field(default_factory=dict)
    in_shapes: dict[int, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    min_level: int = 0

    def level(self, shape: tuple[int, ...]) -> int:
        """log2 of the stride of a 4-D feature map relative to the input, rounded."""
        return round(math.log2(self.input_hw[0] / shape[-2]))

    def stage(self, shape: tuple[int, ...] | None) -> int | None:
        """Stage number of a feature map: 1 for the network's first resolution, +1 per halving."""
        if shape is None or len(shape) != 4:
            return None
        return self.level(shape) - self.min_level + 1

    def out_shape(self, module: nn.Module) -> tuple[int, ...] | None:
        return self.out_shapes.get(id(module))

    def not_a_feature_map(self, shape: tuple[int, ...] | None) -> str | None:
        """Why a tensor of ``shape`` is not an (N, C, H, W) feature map of the probe input, or
        None when it is one."""
        if shape is None:
            return "not a tensor"
        if len(shape) != 4:
            return f"shape {shape}, not (N, C, H, W)"
        # Convs keep the input's aspect ratio in the last two dims; a channels-last tensor
        # (N, H, W, C) of a transformer-style block has its channels there instead, and
        # attention would pool over the wrong dims. Only C close to W escapes this test.
        h, w = shape[-2:]
        expected_h = w * self.input_hw[0] / self.input_hw[1]
        if abs(h - expected_h) > max(1.5, 0.1 * expected_h):
            return (
                f"shape {shape}, whose last two dims are not the "
                f"{self.input_hw[0]}x{self.input_hw[1]} input's grid scaled down: it looks "
                "channels-last (N, H, W, C), as in transformer-style blocks, and attention "
                "needs (N, C, H, W)"
            )
        return None

    def call_count(self, module: nn.Module) -> int:
        return self.calls.get(id(module), 0)


def _tensor_shapes(value: object) -> Iterator[tuple[int, ...]]:
    if isinstance(value, torch.Tensor):
        yield tuple(value.shape)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensor_shapes(item)


def probe_model(model: nn.Module, sample: torch.Tensor) -> Probe:
    """Run ``model(sample)`` once, recording each module's input/output shapes and call count.

    The caller puts the model in eval mode under ``torch.no_grad()``.
    """
    probe = Probe(input_hw=(sample.shape[-2], sample.shape[-1]))

    def pre_hook(module: nn.Module, args: tuple[object, ...]) -> None:
        key = id(module)
        probe.calls[key] = probe.calls.get(key, 0) + 1
        if key not in probe.in_shapes:
            probe.in_shapes[key] = tuple(_tensor_shapes(args))

    def hook(module: nn.Module, args: tuple[object, ...], output: object) -> None:
        key = id(module)
        if key not in probe.out_shapes:
            probe.out_shapes[key] = (
                tuple(output.shape) if isinstance(output, torch.Tensor) else None
            )

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    try:
        model(sample)
    finally:
        for handle in handles:
            handle.remove()
    levels = [
        probe.level(shape)
        for m in model.modules()
        if isinstance(m, nn.modules.conv._ConvNd)
        and (shape := probe.out_shapes.get(id(m))) is not None
        and len(shape) == 4
    ]
    probe.min_level = min(levels) if levels else 0
    return probe


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
            return _name(node.target) in _ACT_NAMES
        return False

    def is_norm(self, node: fx.Node) -> bool:
        m = self.module(node)
        return m is not None and (isinstance(m, _NORMS) or "Norm" in type(m).__name__)

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
        return node.op == "call_function" and _name(node.target) in _CONV_FUNCTION_NAMES

    def is_add(self, node: fx.Node) -> bool:
        if node.op == "call_function" and node.target in _ADD_FUNCTIONS:
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
        return _upstream(node, lambda n: n.all_input_nodes)

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
        return _name(node.target)


@dataclass
class Residual:
    """A residual unit's graph: ``out = tail(add(branch, shortcut))``."""

    view: GraphView
    x: fx.Node
    add: fx.Node
    branch: fx.Node
    shortcut: fx.Node
    out: fx.Node
    tail: list[fx.Node]


def find_residual(view: GraphView) -> Residual | None:
    """The residual add feeding the output, if ``view`` is a residual unit; or the concat of a
    shortcut and a branch (ShuffleNet's stride-2 unit: ``cat(avgpool(x), branch(x))``)."""
    out = view.output_value()
    if out is None or not view.inputs:
        return None
    x = view.inputs[0]
    add, tail = view.strip_tail(out)
    if not view.is_add(add):
        return _concat_residual(view, x, add, out, tail)
    if len(add.args) < 2:
        return None
    a, b = add.args[:2]
    if not isinstance(a, fx.Node) or not isinstance(b, fx.Node):
        return None
    anc_a, anc_b = view.ancestors(a), view.ancestors(b)
    if x not in anc_a or x not in anc_b:
        return None
    # What both operands share may only be a pre-activation (BN, ReLU), never a conv: otherwise
    # this is a stack of units (a stage), not one unit.
    if any(view.is_heavy(n) for n in (anc_a & anc_b) - {x}):
        return None
    heavy_a = sum(view.is_heavy(n) for n in anc_a - anc_b)
    heavy_b = sum(view.is_heavy(n) for n in anc_b - anc_a)
    if heavy_a == heavy_b:
        return None
    branch, shortcut = (a, b) if heavy_a > heavy_b else (b, a)
    return Residual(view, x, add, branch, shortcut, out, tail)


def _concat_residual(
    view: GraphView, x: fx.Node, cat: fx.Node, out: fx.Node, tail: list[fx.Node]
) -> Residual | None:
    """``cat([shortcut(x), branch(x)])`` where the shortcut is conv-free but not ``x`` itself
    (that is dense aggregation) and the branch holds at least two convs (one conv beside a pool
    is an Inception-v4 reduction module, a multi-branch module)."""
    operands = cat_operands(cat)
    if operands is None or len(operands) != 2:
        return None
    if any(view.strip_tail(op)[0] is x for op in operands):
        return None
    anc = [view.ancestors(op) for op in operands]
    if x not in anc[0] or x not in anc[1]:
        return None
    if any(view.is_heavy(n) for n in (anc[0] & anc[1]) - {x}):
        return None
    heavy = [sum(view.is_heavy(n) for n in anc[i] - anc[1 - i]) for i in (0, 1)]
    if sorted(heavy)[0] != 0 or max(heavy) < 2:
        return None
    i = heavy.index(max(heavy))
    return Residual(view, x, cat, operands[i], operands[1 - i], out, tail)


@dataclass
class ResidualSite:
    """Where one integration strategy puts attention inside a residual unit."""

    node: fx.Node
    users: tuple[fx.Node, ...] | None
    location: str


class SiteError(ValueError):
    """A unit has no place for the requested strategy (the message says why)."""


def residual_site(res: Residual, strategy: str) -> ResidualSite:
    """The node and consumers for ``strategy`` (paper Fig. 5; ``conv3x3`` is Table 15)."""
    view = res.view
    if strategy == "standard":
        # Before the add, but ahead of a trailing drop-path / identity so that they act on the
        # recalibrated branch as in SE-ResNet.
        # Also ahead of a residual scaling by a constant (Inception-ResNet's ``out * 0.17 + x``):
        # SE recalibrates the branch's features; the scaling stays the last step into the sum.
        # Into a concat, ahead of the branch's own activation too: ShuffleNet's ReLU follows
        # the concat in the paper (Fig. 2c); code that applies it to the branch alone is the same.
        concat = not view.is_add(res.add)
        node, scaled = res.branch, False
        while len(node.args) > 0 and isinstance(node.args[0], fx.Node):
            is_scale = view.is_constant_scale(node)
            walk_over = view.is_pass(node) or is_scale or (concat and view.is_act(node))
            if not walk_over or len(node.args[0].users) != 1:
                break
            scaled = scaled or is_scale
            node = node.args[0]
        users = (res.add,) if node is res.branch else None
        merge = "concat with the shortcut" if concat else "add"
        before = f"the residual scaling and the {merge}" if scaled else f"the {merge}"
        return ResidualSite(
            node, users, f"branch end: after {view.describe(node)}, before {before}"
        )
    if strategy == "identity":
        where = "" if res.shortcut is res.x else f", after {view.describe(res.shortcut)}"
        return ResidualSite(res.shortcut, (res.add,), f"shortcut{where}")
    if strategy == "pre":
        shortcut_side = view.ancestors(res.shortcut)
        branch_only = view.ancestors(res.branch) - shortcut_side
        edges = [
            (src, dst)
            for dst in branch_only
            for src in dst.all_input_nodes
            if src in shortcut_side and src.op != "get_attr"
        ]
        sources = {src for src, _ in edges}
        if len(sources) != 1:
            raise SiteError("the residual branch starts from several tensors; PRE is ambiguous")
        (src,) = sources
        users = tuple(dict.fromkeys(dst for _, dst in edges))
        first = ", ".join(view.describe(u) for u in users)
        return ResidualSite(src, users, f"branch start: before {first}")
    if strategy == "conv3x3":
        branch_only = view.ancestors(res.branch) - view.ancestors(res.shortcut)
        for node in view.nodes:
            conv = view.conv(node) if node in branch_only else None
            if conv is not None and max(conv.kernel_size) > 1:
                end = view.unit_end(node)
                k = "x".join(map(str, conv.kernel_size))
                where = f"after {view.describe(node)} ({k}) + norm/act"
                return ResidualSite(end, None, where)
        raise SiteError("no spatial (k > 1) convolution on the residual branch")
    raise ValueError(f"residual_site: unknown strategy {strategy!r}")


def find_cat(view: GraphView) -> list[fx.Node] | None:
    """The operands of a channel concatenation feeding the output, if there is one."""
    out = view.output_value()
    if out is None:
        return None
    node, _ = view.strip_tail(out)
    return cat_operands(node)


def cat_operands(node: fx.Node) -> list[fx.Node] | None:
    """The operands of ``node`` if it is a channel concatenation of two or more tensors."""
    if node.op != "call_function" or _name(node.target) not in _CAT_NAMES:
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


def _inline_unit_name(view: GraphView, branches: InlineBranches, path: str) -> str:
    """The common prefix of the branch modules' names, cut at a ``_`` / ``.`` (``inception_3a``
    from ``inception_3a_1x1``, ``inception_3a_pool``, ...); when there is none, the container's
    own path if the branches are all its convs, else the concat node's name."""
    targets = sorted(str(n.target) for n in branches.region if n.op == "call_module")
    lo, hi = (targets[0], targets[-1]) if targets else ("", "")
    k = 0
    while k < min(len(lo), len(hi)) and lo[k] == hi[k]:
        k += 1
    prefix = lo[:k]
    if k < len(lo) and k < len(hi) and not prefix.endswith(("_", ".")):
        prefix = prefix[: max(prefix.rfind("_"), prefix.rfind(".")) + 1]  # "branch" of branch1
    prefix = prefix.rstrip("._")
    if len(prefix) >= 2:
        return _join(path, prefix)
    heavy = {n for n in view.nodes if view.is_heavy(n)}
    if path and heavy <= branches.region:
        return path
    return _join(path, str(branches.cat.name))


def _node_shape(view: GraphView, node: fx.Node, probe: Probe) -> tuple[int, ...] | None:
    """Shape of ``node`` read from the probe: a module called once, or an act/pass after one."""
    if node.op == "call_module":
        module = view.module(node)
        return probe.out_shape(module) if probe.call_count(module) == 1 else None
    if view.is_act(node) and node.args and isinstance(node.args[0], fx.Node):
        return _node_shape(view, node.args[0], probe)
    return None


def _cat_shape(view: GraphView, operands: list[fx.Node], probe: Probe) -> tuple[int, ...] | None:
    shapes = [_node_shape(view, op, probe) for op in operands]
    if any(s is None or len(s) != 4 for s in shapes) or len({s[2:] for s in shapes}) != 1:
        return None
    return (shapes[0][0], sum(s[1] for s in shapes), *shapes[0][2:])


@dataclass
class Candidate:
    """A place that can take attention, found by the walk."""

    unit: str  # module path shown in the report (a conv's path for a conv unit)
    kind: str  # one of UNIT_KINDS
    module: nn.Module  # the unit module (the container for an in-graph conv unit)
    out_shape: tuple[int, ...] | None
    calls: int
    container: str | None = None  # in-graph conv unit: path of the module whose graph holds it
    conv_target: str | None = None  # ... the conv's target in that graph
    end_target: str | None = None  # ... the module ending the unit (None: a function, e.g. F.relu)
    end_module: nn.Module | None = None
    cat_node: str | None = None  # inline multi-branch module: name of its concat node
    location: str | None = None  # inline multi-branch module: where, in words
    branch_end: str | None = None  # untraceable residual unit: the child ending its branch


@dataclass
class Walk:
    """Everything the walk found."""

    blocks: list[Candidate] = field(default_factory=list)
    conv_units: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    visited: int = 0


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def classify(module: nn.Module) -> tuple[str, GraphView | None, str]:
    """(kind, traced view, reason): kind is a UNIT_KINDS entry, "dense", "container", "none"
    (nothing to attend to) or "opaque" (could not be traced; reason says why)."""
    try:
        view = GraphView(module, trace_module(module))
    except Exception as err:  # fx raises many types; any of them means "cannot read this"
        return "opaque", None, f"{type(err).__name__}: {err}".splitlines()[0][:160]
    if find_residual(view) is not None:
        return "residual", view, ""
    operands = find_cat(view)
    if operands is not None and view.inputs:
        x = view.inputs[0]
        if any(view.strip_tail(op)[0] is x for op in operands):
            return "dense", view, ""
        if all(x in view.ancestors(op) for op in operands):
            return "multi-branch", view, ""
    called = [view.module(n) for n in view.nodes if n.op == "call_module"]
    counts = [heavy_count(m) for m in called]
    functional = sum(
        1 for n in view.nodes if n.op == "call_function" and _name(n.target) in _CONV_FUNCTION_NAMES
    )
    total = sum(counts) + functional
    if total == 0:
        return "none", view, ""
    if all(c <= 1 for c in counts):
        downs = sum(_downsampling_count(m) for m in called) + sum(
            1 for n in view.nodes if n.op == "call_function" and _name(n.target) in _POOL_NAMES
        )
        if total == 1:
            return "conv-unit", view, ""
        if downs <= 1:
            return "block", view, ""
    return "container", view, ""


def walk(model: nn.Module, probe: Probe) -> Walk:
    """Classify the modules of ``model`` top-down and collect the candidate units."""
    found = Walk()
    seen: set[int] = set()

    def candidate(path: str, kind: str, module: nn.Module) -> Candidate:
        return Candidate(path, kind, module, probe.out_shape(module), probe.call_count(module))

    def visit(path: str, module: nn.Module) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        if is_attention_module(module):
            return
        found.visited += 1
        kind, view, reason = classify(module)
        if path and kind in ("residual", "multi-branch", "block"):
            found.blocks.append(candidate(path, kind, module))
            return
        if path and kind == "conv-unit":
            found.conv_units.append(candidate(path, kind, module))
            return
        if kind == "dense":
            _visit_dense(path, view)
            return
        if kind == "opaque" and path and type(module).forward is not nn.Module.forward:
            ran = read_by_running(module, probe)
            if ran.kind in ("residual", "multi-branch"):
                c = candidate(path, ran.kind, module)
                found.blocks.append(replace(c, branch_end=ran.branch_end, location=ran.location))
                return
            if ran.kind == "undecided":
                found.skipped.append((path, f"forward could not be traced ({reason}); {ran.why}"))
                return
        if kind == "opaque" or view is None:
            # ModuleList / ModuleDict have no forward: nothing to report, just read the children.
            if path and type(module).forward is not nn.Module.forward:
                found.skipped.append(
                    (path, f"forward could not be traced ({reason}); read its children instead")
                )
            for name, child in module.named_children():
                visit(_join(path, name), child)
            return
        _visit_graph(path, view)

    def _visit_dense(path: str, view: GraphView) -> None:
        x = view.inputs[0]
        for node in find_cat(view) or []:
            if node is x or view.strip_tail(node)[0] is x:
                continue
            layer = view.module(node)
            if layer is None or heavy_count(layer) == 0:
                found.skipped.append(
                    (path, f"dense concat operand {view.describe(node)} is not a layer module")
                )
                continue
            seen.add(id(layer))
            found.blocks.append(candidate(_join(path, str(node.target)), "dense-layer", layer))

    def _visit_graph(path: str, view: GraphView) -> None:
        covered: set[fx.Node] = set()
        for branches in find_inline_branches(view):
            covered |= branches.region
            found.blocks.append(
                Candidate(
                    unit=_inline_unit_name(view, branches, path),
                    kind="multi-branch",
                    module=view.owner,
                    out_shape=_cat_shape(view, cat_operands(branches.cat) or [], probe),
                    calls=1,
                    container=path,
                    cat_node=branches.cat.name,
                    location=f"after the concat of its {branches.branches} branches",
                )
            )
        for node in view.nodes:
            child = view.module(node)
            if child is None or node in covered:
                continue
            child_path = _join(path, str(node.target))
            if view.conv(node) is not None and not is_retrofitted(child):
                _conv_unit(path, child_path, view, node)
            elif type(child).__module__.startswith("torch.nn.") and not is_retrofitted(child):
                continue  # a built-in layer: norm, activation, pooling, linear ...
            elif not is_transparent(child):
                visit(child_path, child)

    def _conv_unit(path: str, conv_path: str, view: GraphView, node: fx.Node) -> None:
        conv = view.conv(node)
        end = view.unit_end(node)
        users = list(end.users)
        if (
            conv.groups > 1
            and conv.groups == conv.in_channels
            and len(users) == 1
            and view.is_heavy(users[0])
        ):
            found.skipped.append((conv_path, "depthwise conv: its unit ends after the next conv"))
            return
        end_module = view.module(end)
        found.conv_units.append(
            Candidate(
                unit=conv_path,
                kind="conv-unit",
                module=view.owner,
                out_shape=probe.out_shape(conv),
                calls=probe.call_count(conv),
                container=path,
                conv_target=str(node.target),
                end_target=None if end_module is None else str(end.target),
                end_module=end_module,
            )
        )

    visit("", model)
    return found


def find_existing(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost attention modules already in ``model``, with their paths."""
    return outermost_attention(model)


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


# ---- modules whose forward cannot be traced: read them by running them ----------------------
#
# fx cannot trace a forward that unpacks a tensor's size (megvii's ShuffleNet v1 channel
# shuffle) or branches on data. Such a unit is run once on a sample instead, recording which of
# its children and which torch functions consumed which tensors: the path taken for this
# instance (its stride is fixed) as a data-flow graph. A unit read this way can take attention
# only on the output of one of its children or on its own output, since its forward cannot be
# rewritten.


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
        return _upstream(self, lambda n: n.args)


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
        return [self.producer[id(t)] for t in _tensors(value) if id(t) in self.producer]

    def produce(self, node: RunNode, value: object) -> None:
        for arg in node.args:
            arg.users.append(node)
        for t in _tensors(value):
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
        if self.depth == 0 and any(True for _ in _tensors(result)):
            name = _function_name(func)
            inputs = self.node_of((args, list((kwargs or {}).values())))
            heavy = int(name in _CONV_FUNCTION_NAMES)
            light = name in _ACT_NAMES or name in _RUN_PASS
            self.produce(RunNode("function", name, inputs, heavy, light), result)
        return result


def _tensors(value: object) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


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
                node = RunNode("module", name, recording.node_of(args), heavy_count(child),
                               light)  # fmt: skip
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


def _run_sample(module: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    ref = next(
        (t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None
    )
    if ref is None:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if ref.device.type == "meta":
        return torch.empty(shape, device="meta", dtype=ref.dtype)
    generator = torch.Generator(device=ref.device).manual_seed(0)
    return torch.randn(shape, generator=generator, device=ref.device).to(ref.dtype)


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
        ends = run_graph(module, _run_sample(module, in_shapes[0]))
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
    if merge.target in _CAT_NAMES:
        if len(operands) == 2 and with_convs == 1 and max(heavy) >= 2 and x not in operands:
            branch = _strip_light(operands[heavy.index(max(heavy))])
            return _branch_end(branch, "concat with the shortcut", calls)
        if with_convs >= 2 and x not in operands:
            return RunReading("multi-branch", location="module output (read by running it)")
    return RunReading("container")
