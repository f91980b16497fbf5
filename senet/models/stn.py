"""A Spatial Transformer in front of any image classifier (Jaderberg et al., NeurIPS 2015)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from senet.layers.spatial_transformer import SpatialTransformer

STN_KINDS = ("affine",)


class STNClassifier(nn.Module):
    """Spatial Transformer, then the classifier: SpatialTransformer (identity at init), model.

    The STN resamples the input canvas to ``output_size`` (default: the canvas size) before the
    model sees it; ``rectify(x)`` returns what the model sees. State-dict keys are ``stn.*`` and
    ``model.*``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        in_chans: int,
        output_size: tuple[int, int] | None = None,
        **stn_kwargs: Any,
    ) -> None:
        super().__init__()
        self.stn = SpatialTransformer(in_chans, output_size=output_size, **stn_kwargs)
        self.model = model
        self.in_chans = in_chans
        self.output_size = tuple(output_size) if output_size is not None else None
        cfg = getattr(model, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            self.pretrained_cfg = dict(cfg)
        self.num_classes = getattr(model, "num_classes", None)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is an image batch no smaller than ``output_size``."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"with_stn: the spatial transformer resamples (N, {self.in_chans}, H, W) images, "
                f"got shape {tuple(x.shape)}; an STN needs image input with the channels it "
                f"was built for (in_chans={self.in_chans})"
            )
        if self.output_size is not None and (
            x.shape[-2] < self.output_size[0] or x.shape[-1] < self.output_size[1]
        ):
            height, width = self.output_size
            raise ValueError(
                f"with_stn: the {x.shape[-2]}x{x.shape[-1]} input canvas is smaller than the "
                f"{height}x{width} the model expects (output_size / model.stn_size): the STN "
                "would invent resolution; use a larger canvas (data.distort_canvas, "
                "data.image_size) or a smaller output_size"
            )

    def rectify(self, x: torch.Tensor) -> torch.Tensor:
        """The STN's output: the (N, C, H_out, W_out) images the model classifies."""
        self.check_input(x)
        return self.stn(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.rectify(x))

    def get_classifier(self) -> nn.Module | None:
        """The wrapped model's classifier (its ``get_classifier()``, else its last Linear)."""
        get = getattr(self.model, "get_classifier", None)
        if callable(get):
            return get()
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        return linears[-1] if linears else None

    def reset_classifier(self, num_classes: int, *args: Any, **kwargs: Any) -> None:
        """The wrapped model's ``reset_classifier``."""
        self.model.reset_classifier(num_classes, *args, **kwargs)
        self.num_classes = num_classes


def first_conv(model: nn.Module) -> nn.Module | None:
    """The model's first layer that holds weights, or None if it has none."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Conv1d | nn.Conv3d | nn.Embedding):
            return module
    return None


def with_stn(
    model: nn.Module,
    *,
    kind: str = "affine",
    in_chans: int | None = None,
    output_size: int | tuple[int, int] | None = None,
    **stn_kwargs: Any,
) -> STNClassifier:
    """``model`` behind a ``SpatialTransformer`` initialised to the identity.

    Args:
        model: any image classifier (senet, torchvision, timm, your own) whose first weighted
            layer is a ``Conv2d``.
        kind: the transform the localisation net regresses; ``"affine"`` (6 parameters).
        in_chans: image channels; default: the first conv's ``in_channels``.
        output_size: side (or (H, W)) of the images handed to the model; default: the input's.
        **stn_kwargs: passed to ``SpatialTransformer`` (``hidden``, ``mode``, ``padding_mode``
            (default ``"border"``), ``localization``/``loc_features``).
    """
    if kind not in STN_KINDS:
        raise ValueError(
            f"with_stn: unknown kind {kind!r} (model.stn); expected one of {list(STN_KINDS)}"
        )
    if isinstance(model, STNClassifier):
        raise ValueError("with_stn: the model already has a spatial transformer in front")
    first = first_conv(model)
    if not isinstance(first, nn.Conv2d):
        found = "no weighted layer" if first is None else f"a {type(first).__name__}"
        raise ValueError(
            f"with_stn: {type(model).__name__}'s first weighted layer is {found}, not a Conv2d; "
            "a spatial transformer resamples images (N, C, H, W) and belongs in front of an "
            "image model"
        )
    if in_chans is None:
        in_chans = first.in_channels
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    # Border padding: the canvas edge (black around a distorted object) fills what the sampler
    # reads outside it. Zero padding would read 0 of the *normalised* input, the mean grey.
    stn_kwargs.setdefault("padding_mode", "border")
    return STNClassifier(model, in_chans=in_chans, output_size=output_size, **stn_kwargs)
