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
:mod:`senet.retrofitting.hook_reading`); when that shows a unit but no place retrofit can reach, it is skipped
with the reason rather than guessed at from its children.

Stages are resolutions: stage 1 is the network's first feature-map resolution (the stem conv's
output), and each halving starts the next stage. For ResNet-50 that makes conv2_x..conv5_x
stages 2..5, the numbering of the paper's Table 13.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import fx, nn

from senet.layers.detect import is_attention_module, outermost_attention
from senet.retrofitting.graph import (
    GraphView,
    InlineBranches,
    cat_operands,
    find_cat,
    find_inline_branches,
)
from senet.retrofitting.hook_reading import read_by_running
from senet.retrofitting.insert import is_retrofitted, is_transparent, trace_module
from senet.retrofitting.op_kinds import (
    CONV_FUNCTION_NAMES,
    POOL_NAMES,
    downsampling_count,
    heavy_count,
    op_name,
)
from senet.retrofitting.probe import Probe
from senet.retrofitting.residual import find_residual

UNIT_KINDS = ("residual", "multi-branch", "dense-layer", "block", "conv-unit")


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
        return join_path(path, prefix)
    heavy = {n for n in view.nodes if view.is_heavy(n)}
    if path and heavy <= branches.region:
        return path
    return join_path(path, str(branches.cat.name))


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


def join_path(prefix: str, name: str) -> str:
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
        1
        for n in view.nodes
        if n.op == "call_function" and op_name(n.target) in CONV_FUNCTION_NAMES
    )
    total = sum(counts) + functional
    if total == 0:
        return "none", view, ""
    if all(c <= 1 for c in counts):
        downs = sum(downsampling_count(m) for m in called) + sum(
            1 for n in view.nodes if n.op == "call_function" and op_name(n.target) in POOL_NAMES
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
                visit(join_path(path, name), child)
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
            found.blocks.append(candidate(join_path(path, str(node.target)), "dense-layer", layer))

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
            child_path = join_path(path, str(node.target))
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
