"""Wire a plan into a model, and check it on a copy first: the caller's model changes only after
the planned modules ran once, each called exactly once."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from senet.profiling.counter import profile
from senet.retrofitting.errors import RetrofitError
from senet.retrofitting.graph import GraphView
from senet.retrofitting.insert import GraphInsert, patch_output, rewrite_forward, trace_for_rewrite
from senet.retrofitting.plan import Placement
from senet.retrofitting.probe import inference
from senet.retrofitting.residual import find_residual, residual_site


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


def check_on_copy(
    model: nn.Module,
    placements: list[Placement],
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
        wire_in(trial, metas)
        _verify(trial, metas, torch.empty_like(sample, device="meta"), on_copy=True)
        return profile(trial, size, name=name).macs, False
    except Exception:  # decided below, on real tensors
        pass
    try:
        trial = copy.deepcopy(model)
    except Exception as err:  # a model holding locks, files, ...: check in place instead
        if dry_run:
            raise RetrofitError(
                f"retrofit: dry_run wires the plan into a copy, and {name} cannot be copied "
                f"({type(err).__name__}: {err}); run without dry_run"
            ) from err
        trial = model
    wire_in(trial, placements)
    _verify(trial, placements, sample, on_copy=trial is not model)
    return profile(trial, size, name=name).macs, trial is model


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def wire_in(model: nn.Module, placements: list[Placement]) -> None:
    """Wire the attention modules in, deepest owners first so that a rewritten forward always
    calls (never inlines) a child that was patched before it."""
    graph_groups: dict[str, list[Placement]] = {}
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
    model: nn.Module, placements: list[Placement], sample: torch.Tensor, *, on_copy: bool
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
        with inference(model):
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
