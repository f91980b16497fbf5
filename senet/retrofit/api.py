"""retrofit: put SE (or any attention module) into a CNN that already exists.

``senet.retrofit(model, "se")`` finds the units of ``model`` by reading its forward graphs (see
:mod:`senet.retrofit.sites`), builds one attention module per unit and wires it into the forward
(see :mod:`senet.retrofit.insert`), keeping every original parameter name. It returns a
:class:`RetrofitReport`; ``print(report)`` shows each site and the cost.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from senet.config import attn_kwargs_problem
from senet.layers.create_attn import AttnLayer, get_attn
from senet.layers.validate import check_choice
from senet.models.blocks import STRATEGIES
from senet.profile.counter import profile
from senet.profile.timing import eval_mode
from senet.retrofit.graph import GraphView, record_shapes
from senet.retrofit.insert import (
    GraphInsert,
    IdentityBlend,
    free_name,
    iterates_children,
    patch_output,
    rewrite_forward,
    set_identity_point,
    trace_for_rewrite,
)
from senet.retrofit.probe import Probe, probe_model
from senet.retrofit.residual import SiteError, find_residual, residual_site
from senet.retrofit.sites import Candidate, classify, find_existing, walk

INITS = ("default", "identity")

SitePredicate = Callable[[str, nn.Module], bool]


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


@dataclass
class _Placement:
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
class _Plan:
    placements: list[_Placement] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reserved: dict[str, set[str]] = field(default_factory=dict)

    def name_for(self, owner_path: str, owner: nn.Module, stem: str) -> str:
        taken = self.reserved.setdefault(owner_path, set())
        name = free_name(owner, stem, taken)
        taken.add(name)
        return name


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the analysis passes; every module's mode restored after."""
    with eval_mode(model), torch.no_grad():
        yield


def _reference_tensor(model: nn.Module) -> torch.Tensor:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t
    return torch.zeros(())


def _sample(shape: Sequence[int], ref: torch.Tensor) -> torch.Tensor:
    """A random input from a private generator: retrofitting leaves the global RNG alone."""
    if ref.device.type == "meta":  # shapes only (a model built under torch.device("meta"))
        return torch.empty(tuple(shape), device="meta", dtype=ref.dtype)
    generator = torch.Generator(device=ref.device).manual_seed(0)
    return torch.randn(tuple(shape), generator=generator, device=ref.device).to(ref.dtype)


def _input_size(model: nn.Module, input_size: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        size = (first_conv.in_channels if first_conv is not None else 3, *size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(
            f"retrofit: input_size must be H, (H, W) or (C, H, W) with positive sizes, "
            f"got {input_size!r}"
        )
    return size  # type: ignore[return-value]


def _probe(model: nn.Module, sample: torch.Tensor) -> Probe:
    """``probe_model``, with a clear error when the probe image does not fit the model."""
    try:
        return probe_model(model, sample)
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"retrofit: the probe input, a random image of shape {tuple(sample.shape)}, does not "
            f"fit {type(model).__name__} ({first}). retrofit runs the model once on a (1, C, H, W) "
            "image to find where attention can go: pass the image size the model takes, e.g. "
            "input_size=(1, 28, 28) or input_size=32"
        ) from err


def _check_stages(stages: Iterable[int] | int | None) -> frozenset[int] | None:
    if stages is None:
        return None
    if isinstance(stages, int):
        stages = [stages]
    stages = list(stages)
    if not stages or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in stages):
        raise ValueError(
            f"retrofit: stages must be stage numbers >= 1 (stage 1 is the network's first "
            f"resolution; ResNet-50's conv2_x..conv5_x are stages 2..5), got {stages!r}"
        )
    return frozenset(stages)


_ITERATES_CHILDREN = (
    "a container with its own forward (a Sequential/ModuleList subclass), which may loop over "
    "its children, so an attention module added to it could run inside that loop; name the "
    "modules inside it, or its parent, in sites=[...]"
)


def _plan_residual(
    plan: _Plan, c: Candidate, strategy: str, probe: Probe, ref: torch.Tensor
) -> _Placement | Skipped:
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
            c.unit, c.kind, "post", "after the add + act", _join(c.unit, name),
            channels, stage, 0,
        )  # fmt: skip
        return _Placement(site, "output", c.unit, name, strategy)
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
    sample = _sample(in_shapes[0], ref)
    shape = record_shapes(module, graph, sample).get(where.node)
    if problem := probe.not_a_feature_map(shape):
        return Skipped(c.unit, f"{strategy} site: {problem}")
    channels = shape[1]
    name = plan.name_for(c.unit, module, "attn")
    site = Site(c.unit, c.kind, strategy, where.location, _join(c.unit, name), channels, stage, 0)
    return _Placement(site, "graph", c.unit, name, strategy)


def _plan_run_residual(
    plan: _Plan, c: Candidate, strategy: str, probe: Probe
) -> _Placement | Skipped:
    """A residual unit read by running it (its forward cannot be traced): the standard site is
    the output of the child that ends its branch; other strategies need the graph."""
    if strategy != "standard":
        return Skipped(
            c.unit,
            f"strategy {strategy!r} needs the unit's graph, and its forward cannot be traced; "
            "strategy='standard' or 'post', or sites=[...], work here",
        )
    owner = _join(c.unit, c.branch_end)
    child = c.module.get_submodule(c.branch_end)
    shape = probe.out_shape(child)
    if problem := probe.not_a_feature_map(shape):
        return Skipped(c.unit, f"branch end {c.branch_end}: {problem}")
    if iterates_children(child):
        return Skipped(c.unit, f"branch end {c.branch_end} is {_ITERATES_CHILDREN}")
    name = plan.name_for(owner, child, "attn")
    site = Site(c.unit, c.kind, strategy, c.location or f"after {c.branch_end}",
                _join(owner, name), shape[1], probe.stage(shape), 0)  # fmt: skip
    return _Placement(site, "output", owner, name, strategy)


def _plan_output(plan: _Plan, c: Candidate, probe: Probe, model: nn.Module) -> _Placement | Skipped:
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
        site = Site(c.unit, c.kind, "output", c.location or "module output", _join(c.unit, name),
                    channels, stage, 0)  # fmt: skip
        return _Placement(site, "output", c.unit, name, "output")
    if c.end_module is not None and probe.call_count(c.end_module) == 1:
        owner = _join(c.container, c.end_target)
        name = plan.name_for(owner, c.end_module, "attn")
        site = Site(c.unit, c.kind, "output", f"after {c.end_target}", _join(owner, name),
                    channels, stage, 0)  # fmt: skip
        return _Placement(site, "output", owner, name, "output")
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
        site = Site(c.unit, c.kind, "output", c.location or "after the concat",
                    _join(c.container, name), channels, stage, 0)  # fmt: skip
        return _Placement(site, "graph", c.container, name, "output", node_name=c.cat_node)
    stem = f"{c.conv_target.replace('.', '_')}_attn"
    name = plan.name_for(c.container, container, stem)
    site = Site(c.unit, c.kind, "output", f"after {c.conv_target} + norm/act",
                _join(c.container, name), channels, stage, 0)  # fmt: skip
    return _Placement(site, "graph", c.container, name, "output", conv_target=c.conv_target)


def _select(model: nn.Module, sites: Sequence[str] | SitePredicate) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    if callable(sites):
        chosen = [(path, m) for path, m in named.items() if sites(path, m)]
        if not chosen:
            raise ValueError("retrofit: the sites predicate selected no module of the model")
        return chosen
    if isinstance(sites, str):
        sites = [sites]
    chosen = []
    for path in sites:
        if path not in named:
            close = difflib.get_close_matches(path, [p for p in named if p], n=5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(
                f"retrofit: sites names {path!r}, which is not a module of "
                f"{type(model).__name__}{hint} (paths as in model.named_modules())"
            )
        chosen.append((path, named[path]))
    if not chosen:
        raise ValueError("retrofit: sites is empty; pass None to let retrofit find the units")
    return chosen


def _explicit_candidates(
    model: nn.Module, sites: Sequence[str] | SitePredicate, probe: Probe
) -> list[Candidate]:
    candidates = []
    for path, module in _select(model, sites):
        kind = classify(module)[0]
        shape = probe.out_shape(module)
        calls = probe.call_count(module)
        if calls == 0:
            raise ValueError(
                f"retrofit: site {path!r} ({type(module).__name__}) is never called by the "
                "model's forward, so attention there would do nothing; name a module that runs"
            )
        if kind != "residual" and (problem := probe.not_a_feature_map(shape)):
            raise ValueError(
                f"retrofit: site {path!r} ({type(module).__name__}) output: {problem}; name a module "
                "that outputs an (N, C, H, W) feature map"
            )
        if kind != "residual" and calls != 1:
            raise ValueError(
                f"retrofit: site {path!r} ({type(module).__name__}) is called {calls} times per "
                "forward (a shared module), so its output is not one place; name a module that "
                "runs once"
            )
        kind = kind if kind in ("residual", "multi-branch", "block", "conv-unit") else "module"
        candidates.append(Candidate(path, kind, module, shape, calls))
    return candidates


def _existing_message(model: nn.Module, existing: list[tuple[str, nn.Module]], label: str) -> str:
    shown = ", ".join(path for path, _ in existing[:4]) + (", ..." if len(existing) > 4 else "")
    return (
        f"{type(model).__name__} already has {len(existing)} attention module(s) ({shown}); "
        f"nothing added. replace_existing=True swaps them for {label!r}; sites=[...] adds more"
    )


def _no_site_error(model: nn.Module, visited: int, stages: frozenset[int] | None,
                   skipped: list[Skipped]) -> ValueError:  # fmt: skip
    reasons = "".join(f"\n  {s.path or '<model>'}: {s.reason}" for s in skipped[:12])
    more = f"\n  ... and {len(skipped) - 12} more" if len(skipped) > 12 else ""
    where = f" in stages {sorted(stages)}" if stages is not None else ""
    return ValueError(
        f"retrofit found no insertion site{where} in {type(model).__name__}: it read the "
        f"forward of {visited} modules looking for residual units (an add of a conv branch and "
        "its input), multi-branch modules (a channel concat of branches), dense layers, blocks "
        "(modules of >= 2 convs) and, in networks without those, conv units (conv -> norm -> "
        "act), and found none it could use. "
        f"Name the sites yourself, e.g. retrofit(model, sites=['layer1.0', ...]) or "
        f"retrofit(model, sites=lambda path, module: isinstance(module, MyBlock)).{reasons}{more}"
    )


def retrofit(
    model: nn.Module,
    attn: AttnLayer = "se",
    *,
    strategy: str = "standard",
    stages: Iterable[int] | int | None = None,
    sites: Sequence[str] | SitePredicate | None = None,
    init: str = "default",
    replace_existing: bool = False,
    input_size: int | Sequence[int] = 224,
    dry_run: bool = False,
    **attn_kwargs: Any,
) -> RetrofitReport:
    """Insert attention into ``model`` in place; return a :class:`RetrofitReport`.

    Args:
        model: any CNN (torchvision, timm, your own classes). Modified in place.
        attn: attention name (``senet.attention_names()``) or class, built as
            ``create_attn(attn, channels, **attn_kwargs)``: ``"se"`` gives the paper's SE block
            (reduction 16, FC biases).
        strategy: where attention goes in a residual unit (paper Fig. 5 / Table 14):
            ``"standard"`` at the end of the residual branch, before the add; ``"pre"`` at the
            start of the residual branch (the shortcut still carries the unscaled input);
            ``"post"`` after the add and its activation; ``"identity"`` on the shortcut,
            parallel to the branch; ``"conv3x3"`` after the branch's first spatial conv and its
            norm/activation (Table 15). Non-residual units (Inception modules, dense layers,
            blocks, conv units) always take attention on their output.
        stages: only units whose output is in these stages (Table 13). Stage 1 is the
            network's first feature-map resolution, each halving starts the next one: ResNet's
            conv2_x..conv5_x (layer1..layer4) are stages 2..5.
        sites: instead of searching, these module paths (``["layer1.0", "features.6"]``) or a
            predicate ``f(path, module) -> bool``. A residual unit takes the strategy's site,
            any other module attention on its output (it must output (N, C, H, W)).
        init: ``"default"`` builds the attention module as its class does (the paper).
            ``"identity"`` starts every site as the identity map, so the model computes exactly
            the original function (for fine-tuning a pretrained network without first breaking
            it). senet's SE, CBAM, ECA and spatial gates are put at an identity point: the layer
            producing the gate logits is zeroed and the sigmoid gate becomes ``2 * sigmoid``
            (:class:`~senet.retrofit.insert.CenteredGate`), so the gate is exactly 1 and its
            parameters get gradients from the first step; the gate's range is then (0, 2).
            Other modules are wrapped in :class:`~senet.retrofit.insert.IdentityBlend`,
            ``x + alpha * (attn(x) - x)`` with ``alpha = 0`` (a slower, second-order start).
            The report's ``init`` column says which each site got.
        replace_existing: a model that already has SE-like modules (MobileNetV3, EfficientNet,
            RegNetY) is left unchanged and they are reported; True swaps each for ``attn``
            (their parameter names then change). ``sites`` adds attention regardless.
        input_size: H, (H, W) or (C, H, W) of the sample that is run once through the model to
            read shapes and stages (small is faster; the model must accept it).
        dry_run: plan and report without changing the model.

    A detection or segmentation model (one with a ``backbone`` child, as torchvision's Faster
    R-CNN, Mask R-CNN, RetinaNet, FCN and DeepLabV3 have) takes attention in its backbone only,
    as in the paper's Table 6 (SE-ResNet-50 in Faster R-CNN): the backbone's feature extractor
    (``backbone.body`` under an FPN, else ``backbone``) is probed and retrofitted on its own, the
    heads are reported as skipped, and MACs are those of that feature extractor at
    ``input_size``. ``sites`` naming modules outside it retrofits the whole model instead.

    Original parameter and buffer names never change: a base state dict still loads (strictly
    on its keys) before or after. New parameters live under the unit, ``<unit>.attn.*`` (and
    ``<unit>.attn_blend.alpha`` with identity init). A saved retrofitted state dict loads into
    a fresh base model retrofitted with the same arguments.
    """
    factory = get_attn(attn)
    if factory is None:
        raise ValueError("retrofit: attn=None inserts nothing; pass an attention such as 'se'")
    check_choice("retrofit", "strategy", strategy, STRATEGIES)
    check_choice("retrofit", "init", init, INITS)
    wanted = _check_stages(stages)
    scope = backbone_path(model)
    if scope is not None and (sub_sites := _sites_within(model, sites, scope)) is not False:
        arguments = dict(strategy=strategy, stages=stages, init=init,
                         replace_existing=replace_existing, input_size=input_size,
                         dry_run=dry_run)  # fmt: skip
        sub_report = retrofit(
            model.get_submodule(scope), attn, sites=sub_sites, **arguments, **attn_kwargs
        )
        return _whole_model_report(model, scope, sub_report)
    size = _input_size(model, input_size)
    ref = _reference_tensor(model)
    sample = _sample((1, *size), ref)
    attn_label = attn if isinstance(attn, str) else getattr(attn, "__name__", repr(attn))
    if problem := attn_kwargs_problem(attn, attn_kwargs):
        raise ValueError(f"retrofit: {problem}")

    plan = _Plan()
    existing = find_existing(model)
    visited = 0
    with _inference(model):
        probe = _probe(model, sample)
        if sites is not None:
            candidates = _explicit_candidates(model, sites, probe)
        elif existing:
            candidates = []
            if not replace_existing:
                message = _existing_message(model, existing, attn_label)
                plan.skipped.append(Skipped("", message))
                warnings.warn(f"retrofit: {message}", stacklevel=2)
        else:
            found = walk(model, probe)
            visited = found.visited
            plan.skipped.extend(Skipped(p, r) for p, r in found.skipped)
            if found.blocks:
                candidates = found.blocks
                plan.skipped.extend(
                    Skipped(c.unit, "conv outside the network's blocks (stem, transition, head)")
                    for c in found.conv_units
                )
            else:  # a plain network: VGG, MobileNet-v1-like
                candidates = found.conv_units
        for c in candidates:
            planned = (
                _plan_residual(plan, c, strategy, probe, ref)
                if c.kind == "residual"
                else _plan_output(plan, c, probe, model)
            )
            if isinstance(planned, Skipped):
                if sites is not None:
                    raise ValueError(f"retrofit: site {planned.path!r}: {planned.reason}")
                plan.skipped.append(planned)
            elif wanted is not None and planned.site.stage not in wanted:
                plan.skipped.append(
                    Skipped(c.unit, f"stage {planned.site.stage} not in stages={sorted(wanted)}")
                )
            else:
                plan.placements.append(planned)
        if replace_existing:
            for path, module in existing:
                _plan_replacement(plan, path, module, probe, wanted)

    if not plan.placements and not existing:
        raise _no_site_error(model, visited, wanted, plan.skipped)

    # Modules are built on the CPU (then moved), so forking the CPU generator is enough to keep
    # a dry run from changing anything, the random stream included.
    with torch.random.fork_rng(devices=[], enabled=dry_run):
        _build_modules(plan, factory, attn_kwargs, init, ref)

    replaced = {p.owner for p in plan.placements if p.mode == "replace"}
    removed = sum(t.numel() for path, m in existing if path in replaced for t in m.parameters())
    report = RetrofitReport(
        model=type(model).__name__,
        attn=attn_label,
        strategy=strategy,
        init=init,
        input_size=size,
        sites=[p.site for p in plan.placements],
        skipped=plan.skipped,
        existing=[f"{path} ({type(m).__name__})" for path, m in existing],
        base_params=sum(t.numel() for t in model.parameters()),
        added_params=sum(p.site.params for p in plan.placements) - removed,
        applied=not dry_run,
    )
    # MACs at the sample's size, counted by senet.profile on the model as it is and, on the
    # checking copy, as it will be; only then (and not for a dry run) is the model changed.
    report.base_macs = profile(model, size, name=report.model).macs
    macs, in_place = _check_on_copy(model, plan.placements, sample, size, dry_run=dry_run)
    report.added_macs = macs - report.base_macs
    if not dry_run and not in_place:
        _apply(model, plan.placements)
    return report


# ---- detection / segmentation models: retrofit the backbone --------------------------------


def backbone_path(model: nn.Module) -> str | None:
    """Path of the feature extractor of a detection / segmentation model, or None.

    torchvision's detectors keep it at ``backbone.body`` (under an FPN in ``backbone.fpn``),
    its segmentation models at ``backbone``; the model's own forward takes image lists or
    returns dicts, so it is not probed as a whole.
    """
    backbone = model._modules.get("backbone")
    if not isinstance(backbone, nn.Module):
        return None
    body = backbone._modules.get("body")
    return "backbone.body" if isinstance(body, nn.Module) else "backbone"


def _sites_within(
    model: nn.Module, sites: Sequence[str] | SitePredicate | None, scope: str
) -> Sequence[str] | SitePredicate | bool | None:
    """``sites`` relative to ``scope``; False when some named site lies outside it."""
    if sites is None:
        return None
    prefix = f"{scope}."
    if callable(sites):
        chosen = [path for path, m in model.named_modules() if sites(path, m)]
        if not all(path.startswith(prefix) for path in chosen):
            return False
        return lambda path, module: sites(_join(scope, path), module)
    names = [sites] if isinstance(sites, str) else list(sites)
    if not names or not all(name.startswith(prefix) for name in names):
        return False
    return [name[len(prefix) :] for name in names]


def _whole_model_report(model: nn.Module, scope: str, sub: RetrofitReport) -> RetrofitReport:
    """The backbone's report, with paths from the whole model and its other parts listed."""
    parts = scope.split(".")
    outside = []
    for depth in range(len(parts)):
        parent = model.get_submodule(".".join(parts[:depth]))
        for name, child in parent.named_children():
            path = _join(".".join(parts[:depth]), name)
            if name != parts[depth] and any(True for _ in child.parameters()):
                outside.append(
                    Skipped(
                        path,
                        f"outside the backbone's feature extractor {scope}: the paper adds SE to the "
                        "backbone (Table 6: SE-ResNet-50 in Faster R-CNN); sites=[...] adds it here",
                    )
                )
    sites = [
        replace(s, unit=_join(scope, s.unit), attn_path=_join(scope, s.attn_path))
        for s in sub.sites
    ]
    skipped = [Skipped(_join(scope, s.path), s.reason) for s in sub.skipped]
    own = sum(t.numel() for t in model.parameters())
    return replace(
        sub,
        model=f"{type(model).__name__} ({scope})",
        sites=sites,
        skipped=skipped + outside,
        existing=[f"{scope}.{e}" for e in sub.existing],
        base_params=own - (sub.added_params if sub.applied else 0),
    )


def _meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter and buffer on the meta device (no memory,
    no weights copied)."""
    memo: dict[int, Any] = {}
    for t in [*module.parameters(), *module.buffers()]:
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = (
            nn.Parameter(empty, requires_grad=t.requires_grad)
            if isinstance(t, nn.Parameter)
            else empty
        )
    return copy.deepcopy(module, memo)


def _check_on_copy(
    model: nn.Module,
    placements: list[_Placement],
    sample: torch.Tensor,
    size: tuple[int, int, int],
    *,
    dry_run: bool,
) -> tuple[int, bool]:
    """Wire the plan into a copy of ``model``, run it once there; return the copy's MACs and
    whether the plan had to be wired into ``model`` itself (it could not be copied).

    A model whose forward defeats the plan (a wrong channel count, a module called twice) raises
    here, before the caller's model is touched. The copy lives on the meta device, so it costs no
    memory; a model that cannot run there (data-dependent control flow, tensors kept outside
    its parameters) is checked on a real copy, and one that cannot be copied at all in place.
    """
    name = type(model).__name__
    try:
        trial = _meta_copy(model)
        metas = [
            replace(
                p,
                attn=_meta_copy(p.attn),
                blend=_meta_copy(p.blend) if p.blend is not None else None,
            )
            for p in placements
        ]
        _apply(trial, metas)
        _verify(trial, metas, torch.empty_like(sample, device="meta"), on_copy=True)
        return profile(trial, size, name=name).macs, False
    except Exception:  # decided below, on real tensors
        pass
    try:
        trial = copy.deepcopy(model)
    except Exception as err:  # a model holding locks, files, ...: check in place instead
        if dry_run:
            raise ValueError(
                f"retrofit: dry_run wires the plan into a copy, and {name} cannot be copied "
                f"({type(err).__name__}: {err}); run without dry_run"
            ) from err
        trial = model
    _apply(trial, placements)
    _verify(trial, placements, sample, on_copy=trial is not model)
    return profile(trial, size, name=name).macs, trial is model


def _build_modules(
    plan: _Plan,
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


def _plan_replacement(
    plan: _Plan, path: str, module: nn.Module, probe: Probe, wanted: frozenset[int] | None
) -> None:
    in_shapes = probe.in_shapes.get(id(module), ())
    problem = probe.not_a_feature_map(in_shapes[0] if in_shapes else None)
    stage = probe.stage(probe.out_shape(module))
    if problem:
        plan.skipped.append(Skipped(path, f"input of the existing attention: {problem}"))
    elif wanted is not None and stage not in wanted:
        plan.skipped.append(Skipped(path, f"stage {stage} not in stages={sorted(wanted)}"))
    else:
        site = Site(path, "existing", "replace", f"replaces {type(module).__name__}", path,
                    in_shapes[0][1], stage, 0)  # fmt: skip
        plan.placements.append(_Placement(site, "replace", path, path.rsplit(".", 1)[-1], ""))


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _apply(model: nn.Module, placements: list[_Placement]) -> None:
    """Wire the attention modules in, deepest owners first so that a rewritten forward always
    calls (never inlines) a child that was patched before it."""
    graph_groups: dict[str, list[_Placement]] = {}
    for p in sorted(placements, key=lambda p: -_depth(p.owner)):
        if p.mode == "output":
            owner = model.get_submodule(p.owner)
            patch_output(owner, p.attn, p.attn_name, p.blend)
        elif p.mode == "replace":
            parent_path, _, name = p.owner.rpartition(".")
            p.attn.train(model.get_submodule(p.owner).training)
            setattr(model.get_submodule(parent_path), name, p.attn)
        else:
            graph_groups.setdefault(p.owner, []).append(p)
    for owner_path in sorted(graph_groups, key=lambda o: -_depth(o)):
        owner = model.get_submodule(owner_path)
        graph = trace_for_rewrite(owner)
        view = GraphView(owner, graph)
        inserts = []
        for p in graph_groups[owner_path]:
            if p.node_name is not None:
                node = next(n for n in view.nodes if n.name == p.node_name)
                inserts.append(GraphInsert(node, p.attn_name, p.attn, None, p.blend))
            elif p.conv_target is None:
                res = find_residual(view)
                if res is None:
                    raise RuntimeError(f"retrofit: {owner_path!r} lost its residual add")
                where = residual_site(res, p.strategy)
                inserts.append(GraphInsert(where.node, p.attn_name, p.attn, where.users, p.blend))
            else:
                conv = next(
                    n for n in view.nodes if n.op == "call_module" and n.target == p.conv_target
                )
                inserts.append(GraphInsert(view.unit_end(conv), p.attn_name, p.attn, None, p.blend))
        rewrite_forward(owner, graph, inserts)
    for p in placements:
        p.attn.train(model.training)
        if p.blend is not None:
            p.blend.train(model.training)


def _verify(
    model: nn.Module, placements: list[_Placement], sample: torch.Tensor, *, on_copy: bool
) -> None:
    """Run the model once and check every new module is called exactly once (no silent no-op)."""
    kept = (
        "The model was left unchanged"
        if on_copy
        else "The model could not be copied, so it now holds the modules named"
    )
    calls = {id(p.attn): 0 for p in placements}

    def count(module: nn.Module, args: Any) -> None:
        calls[id(module)] += 1

    handles = [p.attn.register_forward_pre_hook(count) for p in placements]
    try:
        with _inference(model):
            model(sample)
    except Exception as err:  # whatever the model raises, the caller's model is unchanged
        sites = ", ".join(p.site.attn_path for p in placements[:4])
        raise RuntimeError(
            f"retrofit: {type(model).__name__} fails with the planned attention modules "
            f"({sites}{', ...' if len(placements) > 4 else ''}): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. {kept}; "
            "this is a retrofit bug (please report it with the model), and sites=[...] naming "
            "other modules works around it"
        ) from err
    finally:
        for h in handles:
            h.remove()
    wrong = [
        f"{p.site.attn_path}: {calls[id(p.attn)]}" for p in placements if calls[id(p.attn)] != 1
    ]
    if wrong:
        raise RuntimeError(
            "retrofit: these attention modules are not called exactly once per forward, which "
            f"is a retrofit bug (please report it with the model). {kept}: {', '.join(wrong)}"
        )
