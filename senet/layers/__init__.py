"""Attention building blocks: plain nn.Modules, configured only through their constructors."""

from senet.layers.activations import Clamp01, activation_names, create_act
from senet.layers.branch_scale import BranchScale
from senet.layers.cbam import CBAM, ChannelGate, SpatialGate
from senet.layers.create_attn import attention_names, create_attn, get_attn
from senet.layers.detect import SENET_ATTENTION, is_attention_module, outermost_attention
from senet.layers.eca import ECA, eca_kernel_size
from senet.layers.gated_scale import GatedScale
from senet.layers.gather_excite import GatherExcite
from senet.layers.pooling import GlobalPool2d, spatial_mean
from senet.layers.residual_attention import (
    PreActUnit,
    ResidualAttention,
    ResidualAttentionModule,
    SoftMask,
    SoftMaskBranch,
)
from senet.layers.scse import SCSE, SpatialSE
from senet.layers.spatial_transformer import SpatialTransformer
from senet.layers.squeeze_excite import SqueezeExcite, hidden_width, make_divisible

__all__ = [
    "CBAM",
    "ECA",
    "SCSE",
    "SENET_ATTENTION",
    "BranchScale",
    "ChannelGate",
    "Clamp01",
    "GatedScale",
    "GatherExcite",
    "GlobalPool2d",
    "PreActUnit",
    "ResidualAttention",
    "ResidualAttentionModule",
    "SoftMask",
    "SoftMaskBranch",
    "SpatialGate",
    "SpatialSE",
    "SpatialTransformer",
    "SqueezeExcite",
    "activation_names",
    "attention_names",
    "create_act",
    "create_attn",
    "eca_kernel_size",
    "get_attn",
    "hidden_width",
    "is_attention_module",
    "make_divisible",
    "outermost_attention",
    "spatial_mean",
]
