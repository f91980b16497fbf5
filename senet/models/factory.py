"""create_model: a registered name (plus options and optional weights) -> a ready nn.Module."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from senet.models import resnet
from senet.models._pretrained import KNOWN_WEIGHTS
from senet.models._registry import get_model_builder
from senet.models.family_layouts import LAYOUT_PREPROCESSING
from senet.models.weights import (
    convert_state_dict,
    detect_layout,
    layout_kwargs,
    load_converted,
    load_state_dict,
)


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike = False,
    num_classes: int | None = None,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name``; ``senet.list_models()`` lists the names.

    Args:
        name: e.g. ``"se_resnet50"``, ``"resnet20_cifar"``; an unknown name suggests close ones.
        pretrained: False; True for the known public ImageNet weights of ``name`` (see
            ``model.pretrained_cfg["url"]``); or a checkpoint path or URL in senet's,
            torchvision/timm's or Cadene's layout. The architecture layout the checkpoint needs
            (stride placement, stem pool) is applied unless given in ``kwargs``. With a
            ``num_classes`` other than the checkpoint's, the classifier stays freshly initialised.
        num_classes: classifier outputs; None keeps the model's default (1000 for ImageNet
            models, 10 for CIFAR models); 0 removes the classifier.
        in_chans: input image channels.
        **kwargs: architecture options of the model family, e.g. ``attn="cbam"``,
            ``attn_kwargs={"reduction": 8}``, ``strategy="pre"``, ``attn_stages=(4,)``,
            ``stride_in_1x1=False``, ``zero_init_last=True``.
    """
    builder = get_model_builder(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs["in_chans"] = in_chans
    if pretrained is False or pretrained is None:
        return builder(**kwargs)

    if pretrained is True:
        if name not in KNOWN_WEIGHTS:
            raise ValueError(
                f"no public weights are known for {name!r}; models with weights: "
                f"{', '.join(sorted(KNOWN_WEIGHTS))}. Pass a checkpoint instead: "
                f"create_model({name!r}, pretrained='path/to/weights.pth')"
            )
        source: Any = KNOWN_WEIGHTS[name].url
    elif isinstance(pretrained, str | os.PathLike):
        source = pretrained
    else:
        raise TypeError(
            f"pretrained must be False, True or a checkpoint path/URL, got {type(pretrained)}"
        )
    state = load_state_dict(source)
    layout = detect_layout(state)
    if builder.__module__ == resnet.__name__:
        for key, value in layout_kwargs(layout).items():
            kwargs.setdefault(key, value)
    model = builder(**kwargs)
    state = convert_state_dict(state, layout)
    fc = state.get("fc.weight")
    keep_head = (
        fc is not None and isinstance(model.fc, nn.Linear) and fc.shape == model.fc.weight.shape
    )
    load_converted(model, state, layout=layout, classifier=keep_head)
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg = {
            **model.pretrained_cfg,
            **LAYOUT_PREPROCESSING.get(layout, {}),  # e.g. Caffe's BGR, 0-255 input
            "loaded_from": str(source),
            "weights_layout": layout,
        }
    return model
