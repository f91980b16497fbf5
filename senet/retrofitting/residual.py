"""A residual unit's graph (``out = tail(add(branch, shortcut))``) and where each integration
strategy of the paper's Fig. 5 puts attention in it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx

from senet.retrofitting.errors import RetrofitError
from senet.retrofitting.graph import GraphView, cat_operands


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


class SiteError(RetrofitError):
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
    raise RetrofitError(f"residual_site: unknown strategy {strategy!r}")
