"""retrofit: put SE (or any attention module) into a CNN that already exists.

``senet.retrofit(model, "se")`` finds the units of ``model`` by reading its forward graphs (see
:mod:`senet.retrofitting.sites`), builds one attention module per unit and wires it into the forward
(see :mod:`senet.retrofitting.plan` and :mod:`senet.retrofitting.wiring`), keeping every original parameter name. It returns a
:class:`RetrofitReport`; ``print(report)`` shows each site and the cost.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.layers.create_attn import AttnLayer, attn_kwargs_problem, get_attn
from senet.layers.strategies import STRATEGIES
from senet.layers.validate import check_choice
from senet.profiling.counter import profile
from senet.retrofitting.backbone import backbone_path, sites_within, whole_model_report
from senet.retrofitting.errors import RetrofitError
from senet.retrofitting.plan import (
    Plan,
    SitePredicate,
    build_modules,
    explicit_candidates,
    plan_output,
    plan_replacement,
    plan_residual,
)
from senet.retrofitting.probe import Probe, inference, probe_model, random_input, reference_tensor
from senet.retrofitting.report import RetrofitReport, Skipped
from senet.retrofitting.sites import Candidate, find_existing, walk
from senet.retrofitting.wiring import check_on_copy, wire_in

INITS = ("default", "identity")
_SENET_DIR = f"{Path(__file__).parents[1]}{os.sep}"


def _warn_caller(message: str) -> None:
    """Warn at the first frame outside senet: the user's call, whether through the callable
    package ``senet.retrofit(...)`` and however deep the backbone recursion went (a fixed
    ``stacklevel`` names senet's own frames in those cases)."""
    frame, level = sys._getframe(1), 2  # level 1 is this function
    while frame is not None and frame.f_code.co_filename.startswith(_SENET_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def _input_size(model: nn.Module, input_size: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        size = (first_conv.in_channels if first_conv is not None else 3, *size)
    if len(size) != 3 or min(size) < 1:
        raise RetrofitError(
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
        raise RetrofitError(
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
        raise RetrofitError(
            f"retrofit: stages must be stage numbers >= 1 (stage 1 is the network's first "
            f"resolution; ResNet-50's conv2_x..conv5_x are stages 2..5), got {stages!r}"
        )
    return frozenset(stages)


def _existing_message(model: nn.Module, existing: list[tuple[str, nn.Module]], label: str) -> str:
    shown = ", ".join(path for path, _ in existing[:4]) + (", ..." if len(existing) > 4 else "")
    return (
        f"{type(model).__name__} already has {len(existing)} attention module(s) ({shown}); "
        f"nothing added. replace_existing=True swaps them for {label!r}; sites=[...] adds more"
    )


def _no_site_error(
    model: nn.Module, visited: int, stages: frozenset[int] | None, skipped: list[Skipped]
) -> RetrofitError:
    reasons = "".join(f"\n  {s.path or '<model>'}: {s.reason}" for s in skipped[:12])
    more = f"\n  ... and {len(skipped) - 12} more" if len(skipped) > 12 else ""
    where = f" in stages {sorted(stages)}" if stages is not None else ""
    return RetrofitError(
        f"retrofit found no insertion site{where} in {type(model).__name__}: it read the "
        f"forward of {visited} modules looking for residual units (an add of a conv branch and "
        "its input), multi-branch modules (a channel concat of branches), dense layers, blocks "
        "(modules of >= 2 convs) and, in networks without those, conv units (conv -> norm -> "
        "act), and found none it could use. "
        f"Name the sites yourself, e.g. retrofit(model, sites=['layer1.0', ...]) or "
        f"retrofit(model, sites=lambda path, module: isinstance(module, MyBlock)).{reasons}{more}"
    )


def _find_candidates(
    model: nn.Module,
    probe: Probe,
    plan: Plan,
    sites: Sequence[str] | SitePredicate | None,
    existing: list[tuple[str, nn.Module]],
    replace_existing: bool,
    attn_label: str,
) -> tuple[list[Candidate], int]:
    """The units to plan, and how many modules the search read (0 when it did not search).

    Named ``sites`` win; a model that already has attention gets nothing new unless
    ``replace_existing`` (which :func:`plan_replacement` handles); otherwise the search's blocks,
    or its conv units in a network without blocks. What is passed over goes to ``plan.skipped``.
    """
    if sites is not None:
        return explicit_candidates(model, sites, probe), 0
    if existing:
        if not replace_existing:
            message = _existing_message(model, existing, attn_label)
            plan.skipped.append(Skipped("", message))
            _warn_caller(f"retrofit: {message}")
        return [], 0
    found = walk(model, probe)
    plan.skipped.extend(Skipped(p, r) for p, r in found.skipped)
    if not found.blocks:  # a plain network: VGG, MobileNet-v1-like
        return found.conv_units, found.visited
    plan.skipped.extend(
        Skipped(c.unit, "conv outside the network's blocks (stem, transition, head)")
        for c in found.conv_units
    )
    return found.blocks, found.visited


def _place_candidates(
    plan: Plan,
    candidates: list[Candidate],
    strategy: str,
    probe: Probe,
    ref: torch.Tensor,
    model: nn.Module,
    wanted: frozenset[int] | None,
    *,
    explicit: bool,
) -> None:
    """Plan each candidate's site; a site the user named that cannot take attention is an error,
    a searched one (or one outside ``wanted`` stages) is reported as skipped."""
    for c in candidates:
        planned = (
            plan_residual(plan, c, strategy, probe, ref)
            if c.kind == "residual"
            else plan_output(plan, c, probe, model)
        )
        if isinstance(planned, Skipped):
            if explicit:
                raise RetrofitError(f"retrofit: site {planned.path!r}: {planned.reason}")
            plan.skipped.append(planned)
        elif wanted is not None and planned.site.stage not in wanted:
            plan.skipped.append(
                Skipped(c.unit, f"stage {planned.site.stage} not in stages={sorted(wanted)}")
            )
        else:
            plan.placements.append(planned)


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
            (:class:`~senet.retrofitting.insert.CenteredGate`), so the gate is exactly 1 and its
            parameters get gradients from the first step; the gate's range is then (0, 2).
            Other modules are wrapped in :class:`~senet.retrofitting.insert.IdentityBlend`,
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
    factory, wanted = _checked_arguments(attn, strategy, init, stages, attn_kwargs)
    scope = backbone_path(model)
    if scope is not None and (sub_sites := sites_within(model, sites, scope)) is not False:
        sub_report = retrofit(
            model.get_submodule(scope),
            attn,
            **dict(strategy=strategy, stages=stages, init=init, input_size=input_size),
            sites=sub_sites,
            replace_existing=replace_existing,
            dry_run=dry_run,
            **attn_kwargs,
        )
        return whole_model_report(model, scope, sub_report)
    size = _input_size(model, input_size)
    ref = reference_tensor(model)
    sample = random_input((1, *size), ref)
    attn_label = attn if isinstance(attn, str) else getattr(attn, "__name__", repr(attn))

    plan = Plan()
    existing = find_existing(model)
    with inference(model):
        probe = _probe(model, sample)
        candidates, visited = _find_candidates(
            model, probe, plan, sites, existing, replace_existing, attn_label
        )
        _place_candidates(
            plan, candidates, strategy, probe, ref, model, wanted, explicit=sites is not None
        )
        if replace_existing:
            for path, module in existing:
                plan_replacement(plan, path, module, probe, wanted)

    if not plan.placements and not existing:
        raise _no_site_error(model, visited, wanted, plan.skipped)

    # Modules are built on the CPU (then moved), so forking the CPU generator is enough to keep
    # a dry run from changing anything, the random stream included.
    with torch.random.fork_rng(devices=[], enabled=dry_run):
        build_modules(plan, factory, attn_kwargs, init, ref)

    described = dict(attn=attn_label, strategy=strategy, init=init, input_size=size)
    report = _report(model, plan, existing, dry_run=dry_run, **described)
    # MACs at the sample's size, counted by senet.profile on the model as it is and, on the
    # checking copy, as it will be; only then (and not for a dry run) is the model changed.
    report.base_macs = profile(model, size, name=report.model).macs
    macs, in_place = check_on_copy(model, plan.placements, sample, size, dry_run=dry_run)
    report.added_macs = macs - report.base_macs
    if not dry_run and not in_place:
        wire_in(model, plan.placements)
    return report


def _checked_arguments(
    attn: AttnLayer,
    strategy: str,
    init: str,
    stages: Iterable[int] | int | None,
    attn_kwargs: dict[str, Any],
) -> tuple[Any, frozenset[int] | None]:
    """The attention's factory and the stage set, once every argument retrofit takes is
    checked (a RetrofitError naming the argument otherwise)."""
    try:
        factory = get_attn(attn)
        check_choice("retrofit", "strategy", strategy, STRATEGIES)
        check_choice("retrofit", "init", init, INITS)
    except ValueError as e:
        raise RetrofitError(str(e)) from None
    if factory is None:
        raise RetrofitError("retrofit: attn=None inserts nothing; pass an attention such as 'se'")
    if problem := attn_kwargs_problem(attn, attn_kwargs):
        raise RetrofitError(f"retrofit: {problem}")
    return factory, _check_stages(stages)


def _report(
    model: nn.Module,
    plan: Plan,
    existing: list[tuple[str, nn.Module]],
    *,
    dry_run: bool,
    **described: Any,
) -> RetrofitReport:
    """The report of a planned retrofit, parameters counted (MACs are added by the caller);
    ``described``: the attention, strategy, init and input size it was asked for."""
    replaced = {p.owner for p in plan.placements if p.mode == "replace"}
    removed = sum(t.numel() for path, m in existing if path in replaced for t in m.parameters())
    return RetrofitReport(
        model=type(model).__name__,
        **described,
        sites=[p.site for p in plan.placements],
        skipped=plan.skipped,
        existing=[f"{path} ({type(m).__name__})" for path, m in existing],
        base_params=sum(t.numel() for t in model.parameters()),
        added_params=sum(p.site.params for p in plan.placements) - removed,
        applied=not dry_run,
    )
