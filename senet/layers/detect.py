"""Recognise attention modules, senet's own and the SE-like blocks of other libraries."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from senet.layers.cbam import CBAM, ChannelGate, SpatialGate
from senet.layers.eca import ECA
from senet.layers.gather_excite import GatherExcite
from senet.layers.scse import SCSE, SpatialSE
from senet.layers.squeeze_excite import SqueezeExcite

SENET_ATTENTION: tuple[type[nn.Module], ...] = (
    SqueezeExcite,
    ChannelGate,
    SpatialGate,
    CBAM,
    ECA,
    GatherExcite,
    SCSE,
    SpatialSE,
)

# Class names of channel/spatial gating blocks in torchvision, timm and Cadene's
# pretrainedmodels; matched by name so none of those libraries has to be imported.
FOREIGN_ATTENTION_NAMES: frozenset[str] = frozenset(
    {
        "SqueezeExcitation",  # torchvision.ops (MobileNetV3, EfficientNet, RegNetY)
        "SqueezeExcite",  # timm (EfficientNet family)
        "SEModule",  # timm resnet, pretrainedmodels senet
        "EffectiveSEModule",
        "SqueezeExciteCl",
        "SELayer",
        "EcaModule",
        "CecaModule",
        "CbamModule",
        "LightCbamModule",
    }
)


def is_attention_module(module: nn.Module) -> bool:
    """True for a channel or spatial gating block: senet's layers or a known foreign SE-like one."""
    return isinstance(module, SENET_ATTENTION) or type(module).__name__ in FOREIGN_ATTENTION_NAMES


def outermost_attention(
    model: nn.Module, is_attention: Callable[[nn.Module], bool] = is_attention_module
) -> list[tuple[str, nn.Module]]:
    """The attention modules of ``model`` not nested in another one (CBAM, not its two gates),
    with their paths, in definition order (shallow to deep)."""
    found: list[tuple[str, nn.Module]] = []

    def visit(path: str, module: nn.Module) -> None:
        if is_attention(module):
            found.append((path, module))
            return
        for name, child in module.named_children():
            visit(f"{path}.{name}" if path else name, child)

    visit("", model)
    return found
