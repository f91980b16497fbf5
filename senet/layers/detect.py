"""Recognise attention modules, senet's own and the SE-like blocks of other libraries."""

from __future__ import annotations

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
