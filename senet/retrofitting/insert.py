"""Put an attention module into an existing module without renaming any of its parameters.

Two ways in, both keep the module's class (``isinstance`` still holds), its attributes, its other
children and every original parameter name; the attention module becomes a new child, so its
parameters are ``<module path>.<attn name>.*``:

- **output patch**: the module's output goes through the attention module (sites at a block's
  output, SE-POST, dense layers, Inception modules, conv units);
- **graph rewrite**: the module's forward is traced with ``torch.fx`` (children stay calls to
  the same child modules), attention calls are inserted at chosen nodes, and the generated code
  becomes the forward (sites inside a residual unit: standard, PRE, identity, after the 3x3).

Either way the instance gets a one-off subclass of its own class carrying the new ``forward``;
the subclass pickles and deep-copies through :func:`_rebuild_retrofitted`, which re-creates it
from a plain description (base class, generated source, output patches).

Why a subclass and generated code, when a wrapper module or an ``fx.GraphModule`` would be plain:
the user's model must stay the user's model. A retrofitted unit (1) is still an instance of the
user's class (``isinstance`` checks in their code keep working), (2) keeps the class's methods
and attributes, (3) keeps every parameter name (a base state dict and the user's optimiser
groups still fit), and (4) pickles and deep-copies. A wrapper breaks (1)-(3); a GraphModule
breaks (1)-(2). ``tests/test_retrofit_subclass.py`` checks each of the four.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from senet.retrofitting.errors import RetrofitError


class CenteredGate(nn.Module):
    """``2 * gate(z)``: exactly 1 where a sigmoid-like gate is 0.5 (z = 0), with slope 2 gate'(0).

    Used by identity init: with the logit layer zeroed, the attention module scales by exactly 1
    at the start, and its parameters get first-order gradients from the first step. The gate's
    range becomes (0, 2): it can amplify a channel as well as suppress it.
    """

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.inner = gate

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.inner(z)


def _zero_(layer: nn.Module) -> None:
    nn.init.zeros_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def set_identity_point(attn: nn.Module) -> bool:
    """Make ``attn`` the identity map, keeping first-order gradients; False if it has no known
    identity point (then :class:`IdentityBlend` is used instead).

    senet's gate modules compute ``x * gate(logits)``; zeroing the layer that produces the
    logits and centring a sigmoid / hard-sigmoid gate (:class:`CenteredGate`) gives a gate of
    exactly 1. SpatialGate's BatchNorm maps the zero logits to its bias, which starts at 0.
    """
    from senet.layers import CBAM, ECA, ChannelGate, SpatialGate, SpatialSE, SqueezeExcite

    if isinstance(attn, CBAM):
        parts = [(attn.channel_gate, "fc2"), (attn.spatial_gate, "conv")]
    elif isinstance(attn, (SqueezeExcite, ChannelGate)):
        parts = [(attn, "fc2")]
    elif isinstance(attn, (ECA, SpatialGate, SpatialSE)):
        parts = [(attn, "conv")]
    else:
        return False
    if not all(isinstance(m.gate, (nn.Sigmoid, nn.Hardsigmoid)) for m, _ in parts):
        return False
    for module, logits in parts:
        _zero_(getattr(module, logits))
        module.gate = CenteredGate(module.gate)
    return True


class IdentityBlend(nn.Module):
    """Blend of a retrofitted attention's output with its input: x + alpha * (attn(x) - x).

    Identity init for attention modules without a known identity point (any module class).
    ``alpha`` starts at 0, so the network computes exactly the original function;
    ``d loss / d alpha = <grad, attn(x) - x>`` is non-zero, so the first step moves alpha and
    from then on the attention parameters get gradients too, but only in proportion to alpha
    (a slow, second-order start, as with ReZero / LayerScale). Keep ``alpha`` out of weight
    decay, or decay pulls it back to 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * (attended - x)


def is_retrofitted(module: nn.Module) -> bool:
    """True when retrofit changed ``module``'s forward (it then counts as one opaque call)."""
    return "_senet_recipe" in type(module).__dict__


def is_transparent(module: nn.Module) -> bool:
    """True for a plain ``nn.Sequential`` (its forward only chains its children)."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


class BlockTracer(fx.Tracer):
    """Traces one module's forward, looking through plain ``nn.Sequential`` containers only.

    Every other child (conv, norm, a custom block, an attention module) stays one
    ``call_module`` node, so regenerated code still calls the very same child modules and a
    rewritten forward never inlines (and so never bypasses) a child's own forward.
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return not is_transparent(m)


def trace_module(module: nn.Module) -> fx.Graph:
    """Trace ``module`` with :class:`BlockTracer`, leaving the module exactly as it was.

    fx stores tensor constants it meets as attributes of the traced root; they are removed again
    so that analysing a model never changes it.
    """
    before = set(module.__dict__)
    try:
        return BlockTracer().trace(module)
    finally:
        for key in set(module.__dict__) - before:
            delattr(module, key)


def trace_for_rewrite(module: nn.Module) -> fx.Graph:
    """Trace ``module`` and check that the graph does not depend on ``module.training``.

    fx bakes Python control flow into the graph; a forward that branches on ``self.training``
    (or passes it to a function) would be frozen in one mode by a rewrite, so it is refused.
    """
    graph = trace_module(module)
    modes = {m: m.training for m in module.modules()}
    try:
        module.train(not module.training)
        other = trace_module(module)
    finally:
        for m, mode in modes.items():
            m.training = mode
    if graph.python_code("self").src != other.python_code("self").src:
        raise RetrofitError(
            f"{type(module).__name__}.forward changes with train()/eval() (it reads "
            "self.training), so it cannot be rewritten safely"
        )
    return graph


@dataclass(frozen=True)
class Recipe:
    """How a retrofitted module's class was made: enough to rebuild it when unpickling.

    ``source``/``global_spec`` are the fx-generated forward (None: the base class's forward);
    ``outputs`` lists ``(attn_name, blend_name or None)`` applied to the forward's output.
    """

    base: type
    source: str | None = None
    global_spec: tuple[tuple[str, str, Any], ...] = ()
    outputs: tuple[tuple[str, str | None], ...] = ()


def _global_spec(globals_: dict[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    # Modules (``torch``) cannot be pickled; store them by name and import them back.
    return tuple(
        (name, "module", value.__name__)
        if isinstance(value, types.ModuleType)
        else (name, "value", value)
        for name, value in sorted(globals_.items())
    )


def _compile_forward(recipe: Recipe) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    for name, kind, value in recipe.global_spec:
        namespace[name] = importlib.import_module(value) if kind == "module" else value
    assert recipe.source is not None
    code = compile(recipe.source, f"<senet.retrofit {recipe.base.__qualname__}.forward>", "exec")
    exec(code, namespace)
    return namespace["forward"]


def _apply_outputs(module: nn.Module, y: Any, outputs: Iterable[tuple[str, str | None]]) -> Any:
    for attn_name, blend_name in outputs:
        attended = getattr(module, attn_name)(y)
        y = attended if blend_name is None else getattr(module, blend_name)(y, attended)
    return y


def _chain_except(added: frozenset[str]) -> Callable[..., Any]:
    """``nn.Sequential.forward`` over the children retrofit did not add."""

    def forward(self: nn.Module, x: Any) -> Any:
        for name, child in self._modules.items():
            if name not in added:
                x = child(x)
        return x

    return forward


def iterates_children(module: nn.Module) -> bool:
    """True for a container subclass with its own forward (it may loop over its children, so
    a child added to it could run inside that loop)."""
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    return isinstance(module, containers) and not is_transparent(module)


def _make_forward(recipe: Recipe) -> Callable[..., Any]:
    if recipe.source is not None:
        inner = _compile_forward(recipe)
    elif recipe.base.forward is nn.Sequential.forward:
        # A plain Sequential chains every child, the added attention too: leave those out.
        added = frozenset(name for pair in recipe.outputs for name in pair if name is not None)
        inner = _chain_except(added)
    else:
        inner = recipe.base.forward
    if not recipe.outputs:
        return inner
    outputs = recipe.outputs

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return _apply_outputs(self, inner(self, *args, **kwargs), outputs)

    return forward


def _reduce_ex(self: nn.Module, protocol: int) -> tuple[Any, ...]:
    return (_rebuild_retrofitted, (type(self)._senet_recipe,), self.__dict__.copy())


def _retrofitted_class(recipe: Recipe) -> type:
    base = recipe.base
    return type(
        base.__name__,
        (base,),
        {
            "forward": _make_forward(recipe),
            "_senet_recipe": recipe,
            "__reduce_ex__": _reduce_ex,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
        },
    )


def _rebuild_retrofitted(recipe: Recipe) -> nn.Module:
    """Unpickling / deepcopy entry point: an empty instance of the rebuilt class."""
    cls = _retrofitted_class(recipe)
    return cls.__new__(cls)


def _recipe_of(module: nn.Module) -> Recipe:
    cls = type(module)
    return cls.__dict__["_senet_recipe"] if is_retrofitted(module) else Recipe(base=cls)


def _set_recipe(module: nn.Module, recipe: Recipe) -> None:
    module.__class__ = _retrofitted_class(recipe)


def free_name(module: nn.Module, stem: str, taken: Iterable[str] = ()) -> str:
    """``stem`` if ``module`` has no attribute of that name (and it is not in ``taken``), else
    ``stem_2``, ``stem_3``, ..."""
    taken = set(taken)
    name, k = stem, 1
    while hasattr(module, name) or name in taken:
        k += 1
        name = f"{stem}_{k}"
    return name


def patch_output(
    module: nn.Module, attn: nn.Module, attn_name: str, blend: nn.Module | None = None
) -> None:
    """Make ``module`` return ``attn(module(x))`` (blended if ``blend`` is given)."""
    module.add_module(attn_name, attn)
    blend_name = None
    if blend is not None:
        blend_name = f"{attn_name}_blend"
        module.add_module(blend_name, blend)
    recipe = _recipe_of(module)
    outputs = (*recipe.outputs, (attn_name, blend_name))
    _set_recipe(module, Recipe(recipe.base, recipe.source, recipe.global_spec, outputs))


@dataclass
class GraphInsert:
    """Insert ``attn`` on the value of ``node``, feeding the result to ``users`` (all if None)."""

    node: fx.Node
    attn_name: str
    attn: nn.Module
    users: tuple[fx.Node, ...] | None = None
    blend: nn.Module | None = None


def rewrite_forward(module: nn.Module, graph: fx.Graph, inserts: Iterable[GraphInsert]) -> None:
    """Insert attention calls into ``graph`` (a trace of ``module``) and make it the forward."""
    for ins in inserts:
        users = list(ins.node.users) if ins.users is None else list(ins.users)
        module.add_module(ins.attn_name, ins.attn)
        with graph.inserting_after(ins.node):
            new = graph.call_module(ins.attn_name, (ins.node,))
        if ins.blend is not None:
            blend_name = f"{ins.attn_name}_blend"
            module.add_module(blend_name, ins.blend)
            with graph.inserting_after(new):
                new = graph.call_module(blend_name, (ins.node, new))
        for user in users:
            user.replace_input_with(ins.node, new)
    graph.lint()
    code = graph.python_code("self")
    recipe = _recipe_of(module)
    # A fresh trace already contains the calls of earlier output patches, so they are dropped
    # from the recipe rather than applied twice.
    _set_recipe(
        module,
        Recipe(base=recipe.base, source=code.src, global_spec=_global_spec(code.globals)),
    )
