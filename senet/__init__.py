"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from senet import layers
from senet.layers import attention_names, create_attn

# --- profile ---
# senet.profile is the function; import the module's names with `from senet.profile import ...`.
from senet.profile import compare, profile

# --- end profile ---

__version__ = "0.1.0"

__all__ = ["__version__", "attention_names", "compare", "create_attn", "layers", "profile"]
