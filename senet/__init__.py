"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from senet import layers
from senet.layers import attention_names, create_attn

# --- model zoo (issue 3) ---
from senet.models import create_model, list_models, load_weights, register_model

# --- end model zoo ---

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attention_names",
    "create_attn",
    "create_model",
    "layers",
    "list_models",
    "load_weights",
    "register_model",
]
