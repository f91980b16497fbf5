"""Plan each site before anything changes: which module receives the attention module, under
what name, and in which mode it is wired in (on a module's output, in a rewritten graph, or in
place of an existing attention module)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from senet.retrofitting.errors import RetrofitError
from senet.retrofitting.graph import GraphView, record_shapes
from senet.retrofitting.insert import (
    IdentityBlend,
    free_name,
    iterates_children,
    set_identity_point,
    trace_for_rewrite,
)
from senet.retrofitting.probe import Probe, random_input
from senet.retrofitting.report import Site, Skipped
from senet.retrofitting.residual import SiteError, find_residual, residual_site
from senet.retrofitting.sites import Candidate, classify, join_path

SitePredicate = Callable[[str, nn.Module], bool]


@dataclass
class Placement:
    """A planned site: what to build and how to wire it in."""

    site: Site
    mode: str  # "output" | "graph" | "replace"
    owner: str  # module path of the module that receives the attention module
    attn_name: str
    strategy: str  # residual strategy for mode "graph" on a residual unit
    conv_target: str | None = None  # mode "graph" on a container: the conv whose unit ends here
    node_name: str | None = None  # mode "graph": the node whose value takes attention (a concat)
    attn: nn.Module | None = None
    blend: nn.Module | None = None


@dataclass
class Plan:
    placements: list[Placement] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reserved: dict[str, set[str]] = field(default_factory=dict)

    def name_for(self, owner_path: str, owner: nn.Module, stem: str) -> str:
        taken = self.reserved.setdefault(owner_path, set())
        name = free_name(owner, stem, taken)
        taken.add(name)
        return name


_ITERATES_CHILDREN = (
    "a container with its own forward (a Sequential/ModuleList subclass), which may loop over "
    "its children, so an attention module added to it could run inside that loop; name the "
    "modules inside it, or its parent, in sites=[...]"
)


def plan_residual(
    plan: Plan, c: Candidate, strategy: str, probe: Probe, ref: torch.Tensor
) -> Placement | Skipped:
    module, stage = c.module, probe.stage(c.out_shape)
    if strategy == "post":
        if problem := probe.not_a_feature_map(c.out_shape):
            return Skipped(c.unit, f"output: {problem}")
        channels = c.out_shape[1]
        if c.calls != 1:
            return Skipped(c.unit, f"called {c.calls} times per forward; name one call's module")
        if iterates_children(module):
            return Skipped(c.unit, _ITERATES_CHILDREN)
        name = plan.name_for(c.unit, module, "attn")
        site = Site(
            unit=c.unit,
            kind=c.kind,
            strategy="post",
            location="after the add + act",
            attn_path=join_path(c.unit, name),
            channels=channels,
            stage=stage,
            params=0,
        )
        return Placement(site, "output", c.unit, name, strategy)
    if c.branch_end is not None:
        return _plan_run_residual(plan, c, strategy, probe)
    try:
        graph = trace_for_rewrite(module)
    except ValueError as err:
        return Skipped(c.unit, f"{err}; strategy='post' or sites=[...] still work here")
    view = GraphView(module, graph)
    res = find_residual(view)
    if res is None:  # the trace in the other mode disagreed
        return Skipped(c.unit, "no residual add in its rewritable graph")
    try:
        where = residual_site(res, strategy)
    except SiteError as err:
        return Skipped(c.unit, f"strategy {strategy!r}: {err}")
    in_shapes = probe.in_shapes.get(id(module), ())
    if len(in_shapes) != 1 or len(view.inputs) != 1:
        return Skipped(c.unit, "forward takes more than one tensor; name sites inside it")
    sample = random_input(in_shapes[0], ref)
    shape = record_shapes(module, graph, sample).get(where.node)
    if problem := probe.not_a_feature_map(shape):
        return Skipped(c.unit, f"{strategy} site: {problem}")
    channels = shape[1]
    name = plan.name_for(c.unit, module, "attn")
    site = Site(
        c.unit, c.kind, strategy, where.location, join_path(c.unit, name), channels, stage, 0
    )
    return Placement(site, "graph", c.unit, name, strategy)


def _plan_run_residual(
    plan: Plan, c: Candidate, strategy: str, probe: Probe
) -> Placement | Skipped:
    """A residual unit read by running it (its forward cannot be traced): the standard site is
    the output of the child that ends its branch; other strategies need the graph."""
    if strategy != "standard":
        return Skipped(
            c.unit,
            f"strategy {strategy!r} needs the unit's graph, and its forward cannot be traced; "
            "strategy='standard' or 'post', or sites=[...], work here",
        )
    owner = join_path(c.unit, c.branch_end)
    child = c.module.get_submodule(c.branch_end)
    shape = probe.out_shape(child)
    if problem := probe.not_a_feature_map(shape):
        return Skipped(c.unit, f"branch end {c.branch_end}: {problem}")
    if iterates_children(child):
        return Skipped(c.unit, f"branch end {c.branch_end} is {_ITERATES_CHILDREN}")
    name = plan.name_for(owner, child, "attn")
    site = Site(
        unit=c.unit,
        kind=c.kind,
        strategy=strategy,
        location=c.location or f"after {c.branch_end}",
        attn_path=join_path(owner, name),
        channels=shape[1],
        stage=probe.stage(shape),
        params=0,
    )
    return Placement(site, "output", owner, name, strategy)


def plan_output(plan: Plan, c: Candidate, probe: Probe, model: nn.Module) -> Placement | Skipped:
    """A site on a module's output, or for an in-graph conv unit on its last op."""
    stage = probe.stage(c.out_shape)
    if problem := probe.not_a_feature_map(c.out_shape):
        return Skipped(c.unit, f"output: {problem}")
    channels = c.out_shape[1]
    if c.container is None:
        if c.calls != 1:
            return Skipped(c.unit, f"called {c.calls} times per forward; name one call's module")
        if iterates_children(c.module):
            return Skipped(c.unit, _ITERATES_CHILDREN)
        name = plan.name_for(c.unit, c.module, "attn")
        site = Site(
            unit=c.unit,
            kind=c.kind,
            strategy="output",
            location=c.location or "module output",
            attn_path=join_path(c.unit, name),
            channels=channels,
            stage=stage,
            params=0,
        )
        return Placement(site, "output", c.unit, name, "output")
    if c.end_module is not None and probe.call_count(c.end_module) == 1:
        owner = join_path(c.container, c.end_target)
        name = plan.name_for(owner, c.end_module, "attn")
        site = Site(
            unit=c.unit,
            kind=c.kind,
            strategy="output",
            location=f"after {c.end_target}",
            attn_path=join_path(owner, name),
            channels=channels,
            stage=stage,
            params=0,
        )
        return Placement(site, "output", owner, name, "output")
    # The unit ends in a function (F.relu) or a shared module: rewrite the container's forward.
    container = model.get_submodule(c.container)
    try:
        trace_for_rewrite(container)
    except ValueError as err:
        return Skipped(c.unit, str(err))
    if c.cat_node is not None:  # an inline Inception module: attention on its concat
        local = c.unit[len(c.container) :].strip(".").replace(".", "_")
        stem = f"{local}_attn" if local else "attn"
        name = plan.name_for(c.container, container, stem)
        site = Site(
            unit=c.unit,
            kind=c.kind,
            strategy="output",
            location=c.location or "after the concat",
            attn_path=join_path(c.container, name),
            channels=channels,
            stage=stage,
            params=0,
        )
        return Placement(site, "graph", c.container, name, "output", node_name=c.cat_node)
    stem = f"{c.conv_target.replace('.', '_')}_attn"
    name = plan.name_for(c.container, container, stem)
    site = Site(
        unit=c.unit,
        kind=c.kind,
        strategy="output",
        location=f"after {c.conv_target} + norm/act",
        attn_path=join_path(c.container, name),
        channels=channels,
        stage=stage,
        params=0,
    )
    return Placement(site, "graph", c.container, name, "output", conv_target=c.conv_target)


def _select(model: nn.Module, sites: Sequence[str] | SitePredicate) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    if callable(sites):
        chosen = [(path, m) for path, m in named.items() if sites(path, m)]
        if not chosen:
            raise RetrofitError("retrofit: the sites predicate selected no module of the model")
        return chosen
    if isinstance(sites, str):
        sites = [sites]
    chosen = []
    for path in sites:
        if path not in named:
            close = difflib.get_close_matches(path, [p for p in named if p], n=5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise RetrofitError(
                f"retrofit: sites names {path!r}, which is not a module of "
                f"{type(model).__name__}{hint} (paths as in model.named_modules())"
            )
        chosen.append((path, named[path]))
    if not chosen:
        raise RetrofitError("retrofit: sites is empty; pass None to let retrofit find the units")
    return chosen


def explicit_candidates(
    model: nn.Module, sites: Sequence[str] | SitePredicate, probe: Probe
) -> list[Candidate]:
    candidates = []
    for path, module in _select(model, sites):
        kind = classify(module)[0]
        shape = probe.out_shape(module)
        calls = probe.call_count(module)
        if calls == 0:
            raise RetrofitError(
                f"retrofit: site {path!r} ({type(module).__name__}) is never called by the "
                "model's forward, so attention there would do nothing; name a module that runs"
            )
        if kind != "residual" and (problem := probe.not_a_feature_map(shape)):
            raise RetrofitError(
                f"retrofit: site {path!r} ({type(module).__name__}) output: {problem}; name a module "
                "that outputs an (N, C, H, W) feature map"
            )
        if kind != "residual" and calls != 1:
            raise RetrofitError(
                f"retrofit: site {path!r} ({type(module).__name__}) is called {calls} times per "
                "forward (a shared module), so its output is not one place; name a module that "
                "runs once"
            )
        kind = kind if kind in ("residual", "multi-branch", "block", "conv-unit") else "module"
        candidates.append(Candidate(path, kind, module, shape, calls))
    return candidates


def build_modules(
    plan: Plan,
    factory: Callable[..., nn.Module],
    attn_kwargs: dict[str, Any],
    init: str,
    ref: torch.Tensor,
) -> None:
    for p in plan.placements:
        p.attn = factory(p.site.channels, **attn_kwargs).to(device=ref.device, dtype=ref.dtype)
        start = "default"
        if init == "identity" and p.mode != "replace":
            start = "gate=1"
            if not set_identity_point(p.attn):
                start = "blend"
                p.blend = IdentityBlend().to(device=ref.device, dtype=ref.dtype)
        added = sum(t.numel() for m in (p.attn, p.blend) if m is not None for t in m.parameters())
        p.site = replace(p.site, params=added, init=start)


def plan_replacement(
    plan: Plan, path: str, module: nn.Module, probe: Probe, wanted: frozenset[int] | None
) -> None:
    in_shapes = probe.in_shapes.get(id(module), ())
    problem = probe.not_a_feature_map(in_shapes[0] if in_shapes else None)
    stage = probe.stage(probe.out_shape(module))
    if problem:
        plan.skipped.append(Skipped(path, f"input of the existing attention: {problem}"))
    elif wanted is not None and stage not in wanted:
        plan.skipped.append(Skipped(path, f"stage {stage} not in stages={sorted(wanted)}"))
    else:
        site = Site(
            unit=path,
            kind="existing",
            strategy="replace",
            location=f"replaces {type(module).__name__}",
            attn_path=path,
            channels=in_shapes[0][1],
            stage=stage,
            params=0,
        )
        plan.placements.append(Placement(site, "replace", path, path.rsplit(".", 1)[-1], ""))
