"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from senet import layers
from senet.layers import attention_names, create_attn

__version__ = "0.1.0"

__all__ = ["__version__", "attention_names", "create_attn", "layers"]
