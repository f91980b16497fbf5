"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from senet import layers
from senet.layers import attention_names, create_attn

# retrofit: attention into an existing CNN (issue 5)
from senet.retrofit import RetrofitReport, retrofit

__version__ = "0.1.0"

__all__ = [
    "RetrofitReport",
    "__version__",
    "attention_names",
    "create_attn",
    "layers",
    "retrofit",
]
