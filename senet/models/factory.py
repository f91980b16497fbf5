"""``create_model``: senet's one model builder.

A name (senet's registry, ``torchvision:NAME`` or ``timm:NAME``) becomes a module with its weights
loaded, attention retrofitted and a spatial transformer in front. Weights load here and only here
(``senet.load_weights`` loads into a model you already have). Every error is a ``ModelError``
that names the argument it is about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from senet.models._pretrained import KNOWN_WEIGHTS
from senet.models._registry import checkpoint_layouts, get_model_builder
from senet.models.errors import CheckpointError, ModelError
from senet.models.family_layouts import LAYOUT_PREPROCESSING
from senet.models.foreign import build_foreign, split_name
from senet.models.stn import with_stn
from senet.models.weights import (
    StateDict,
    convert_state_dict,
    detect_layout,
    load_converted,
    read_weights,
)
from senet.retrofitting import RetrofitError
from senet.retrofitting import retrofit as retrofit_model


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike | Mapping[str, Any] = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    retrofit: Mapping[str, Any] | None = None,
    stn: Mapping[str, Any] | None = None,
    pretrained_head: bool | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model ``name``; ``senet.list_models()`` lists senet's names.

    Args:
        name: a senet model (``"se_resnet50"``, ``"resnet20_cifar"``; an unknown name suggests
            close ones), ``"torchvision:NAME"`` or ``"timm:NAME"``.
        pretrained: False; True for the known public weights of ``name`` (a senet model's
            ``pretrained_cfg["url"]``, or the library's default weights); a checkpoint (path,
            URL or state dict) in senet's, torchvision/timm's or Cadene's layout; or a senet
            run's ``.safetensors``, which rebuilds the model it was trained as (its recorded
            arguments, attention and STN included, unless given here).
        num_classes: classifier outputs; None keeps the checkpoint's (or the model's default:
            1000 for ImageNet models, 10 for CIFAR models); 0 removes the classifier.
        in_chans: input image channels; None: 3 (or the run's, for a run's weights).
        retrofit: ``senet.retrofit`` arguments (``{"attn": "se", "init": "identity"}``),
            applied after the base weights load.
        stn: ``senet.with_stn`` arguments (``{"kind": "affine", "output_size": 28}``): a
            spatial transformer in front.
        pretrained_head: None loads the checkpoint's classifier where its shape fits (else the
            classifier stays fresh); True requires it to fit; False keeps a fresh one.
        **kwargs: architecture options of the model family, e.g. ``attn="cbam"``,
            ``attn_kwargs={"reduction": 8}``, ``strategy="pre"``, ``attn_stages=(4,)``,
            ``stride_in_1x1=False``, ``zero_init_last=True``.

    Raises:
        ModelError: an unknown name, an argument the model cannot take, or weights that do not
            fit (a ``CheckpointError``); ``error.argument`` names the argument at fault.
    """
    library, arch = split_name(name)
    plan = _Plan(name, library, arch, retrofit, stn, dict(kwargs))
    checkpoint = _read_pretrained(plan, pretrained)
    if checkpoint is not None and checkpoint.meta:
        plan.take_recorded(checkpoint)
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if value is not None:
            plan.kwargs[key] = value
    base_weights = checkpoint if checkpoint is not None and not checkpoint.meta else None
    model = _build_base(plan, base_weights, library_weights=pretrained is True)
    if base_weights is not None:
        _load(model, base_weights, pretrained_head)
    if plan.retrofit:
        _retrofit(model, plan)
    if plan.stn:
        model = _add_stn(model, plan)
    if checkpoint is not None and checkpoint.meta:
        _load(model, checkpoint, pretrained_head)
    return model


@dataclass
class _Plan:
    """What ``create_model`` builds: the name, its parts and the builder's arguments."""

    name: str
    library: str | None
    arch: str
    retrofit: Mapping[str, Any] | None
    stn: Mapping[str, Any] | None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def take_recorded(self, checkpoint: _Checkpoint) -> None:
        """A senet run's weights rebuild their model: its recorded arguments, unless given."""
        recorded = checkpoint.meta.get("model")
        if recorded is not None and recorded != self.name:
            raise CheckpointError(
                f"holds weights of {recorded!r}, not {self.name!r}; name the model "
                f"{recorded!r} instead",
                value=checkpoint.source,
            )
        saved = dict(checkpoint.meta.get("model_kwargs") or {})
        retrofit, stn = saved.pop("retrofit", None), saved.pop("stn", None)
        self.retrofit = self.retrofit if self.retrofit is not None else retrofit
        self.stn = self.stn if self.stn is not None else stn
        self.kwargs = {**saved, **self.kwargs}


@dataclass
class _Checkpoint:
    """A weights file as read: its tensors, senet metadata (a run's file) and key layout."""

    source: str
    state: StateDict
    meta: dict[str, Any]
    layout: str | None = None


def _read_pretrained(plan: _Plan, pretrained: Any) -> _Checkpoint | None:
    """The checkpoint ``pretrained`` names, read by senet's one reader; None for no weights or
    a library's own (``pretrained=True`` with a ``torchvision:``/``timm:`` name)."""
    if pretrained is False or pretrained is None:
        return None
    if pretrained is True:
        if plan.library is not None:
            return None
        if plan.arch not in KNOWN_WEIGHTS:
            raise ModelError(
                f"no public weights are known for {plan.arch!r}; models with weights: "
                f"{', '.join(sorted(KNOWN_WEIGHTS))}. Pass a checkpoint instead: "
                f"create_model({plan.arch!r}, pretrained='path/to/weights.pth')",
                argument="pretrained",
                value=True,
            )
        pretrained = KNOWN_WEIGHTS[plan.arch].url
    if not isinstance(pretrained, str | os.PathLike | Mapping):
        raise ModelError(
            "pretrained must be False, True, a checkpoint path or URL, or a state dict; got "
            f"{type(pretrained).__name__}",
            argument="pretrained",
        )
    source = "a state dict" if isinstance(pretrained, Mapping) else str(pretrained)
    state, meta = read_weights(pretrained)
    return _Checkpoint(source, state, meta)


def _build_base(plan: _Plan, checkpoint: _Checkpoint | None, *, library_weights: bool) -> nn.Module:
    """The model before attention and STN: a library's builder, or senet's with the
    architecture the checkpoint's layout needs (declared by the family, see register_model)."""
    if plan.library is not None:
        return build_foreign(plan.library, plan.arch, pretrained=library_weights, **plan.kwargs)
    builder = get_model_builder(plan.arch)
    if checkpoint is not None:
        layouts = checkpoint_layouts(plan.arch)
        checkpoint.layout = detect_layout(checkpoint.state)
        if checkpoint.layout not in layouts:
            raise CheckpointError(
                f"a checkpoint in the {checkpoint.layout} layout; {plan.arch} reads the layouts "
                f"{', '.join(layouts)}",
                value=checkpoint.source,
            )
        checkpoint.state = convert_state_dict(checkpoint.state, checkpoint.layout)
        for key, value in layouts[checkpoint.layout].items():
            plan.kwargs.setdefault(key, value)
        head = checkpoint.state.get("fc.weight")
        if head is not None and "num_classes" not in plan.kwargs:
            plan.kwargs["num_classes"] = head.shape[0]
    model = builder(**plan.kwargs)
    if checkpoint is not None and hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg = {
            **model.pretrained_cfg,
            **LAYOUT_PREPROCESSING.get(checkpoint.layout, {}),  # e.g. Caffe's BGR, 0-255 input
            "loaded_from": checkpoint.source,
            "weights_layout": checkpoint.layout,
        }
    return model


def _load(model: nn.Module, checkpoint: _Checkpoint, head: bool | None) -> None:
    """Copy the checkpoint into ``model`` after checking every key and shape (nothing is
    half-loaded); the classifier as ``head`` says (see create_model's pretrained_head)."""
    state = checkpoint.state
    prefix = classifier_prefix(model)
    if prefix is not None and head is not True:
        own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        fits = all(k in state and state[k].shape == v.shape for k, v in own.items())
        if head is False or not fits:
            state = {**{k: v for k, v in state.items() if not k.startswith(prefix)}, **own}
    try:
        # A converted public layout also checks the architecture (stride placement, stem pool).
        layout = checkpoint.layout or "senet"
        load_converted(model, state, layout=layout, check_layout=checkpoint.layout is not None)
    except CheckpointError as err:
        if prefix is None or f"{prefix}weight" not in str(err):
            raise CheckpointError(str(err), value=checkpoint.source) from None
        message = (
            f"{checkpoint.source}: {err}\n  if the classifier ({prefix.rstrip('.')}) is all "
            "that differs, "
            "pretrained_head=False keeps a fresh one (fine-tuning on other classes)"
        )
        raise CheckpointError(message, argument="pretrained_head", value=head) from None


def classifier_prefix(model: nn.Module) -> str | None:
    """The state-dict prefix of the model's classifier (``"fc."``): the module its
    ``get_classifier()`` returns, else its last Linear layer; None if it has neither."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    for name, module in reversed(list(model.named_modules())):
        if module is head or (head is None and isinstance(module, nn.Linear)):
            return f"{name}." if name else None
    return None


def _retrofit(model: nn.Module, plan: _Plan) -> None:
    try:
        retrofit_model(model, **plan.retrofit)
    except (RetrofitError, TypeError) as err:
        reason = f"{err} (on {plan.name})"
        raise ModelError(reason, argument="retrofit", value=dict(plan.retrofit)) from err


def _add_stn(model: nn.Module, plan: _Plan) -> nn.Module:
    try:
        return with_stn(model, **plan.stn)
    except (ValueError, TypeError) as err:
        raise ModelError(f"{err} (on {plan.name})", argument="stn", value=dict(plan.stn)) from err
