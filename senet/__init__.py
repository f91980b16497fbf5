"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

from senet import layers
from senet.layers import attention_names, create_attn
from senet.models import create_model, list_models, load_weights, register_model, with_stn
from senet.models.inference import optimize_for_inference

# senet.profile is the function; import the module's names with `from senet.profile import ...`.
from senet.profile import compare, profile
from senet.retrofit import RetrofitReport, retrofit

__version__ = "0.1.0"

__all__ = [
    "RetrofitReport",
    "__version__",
    "attention_names",
    "compare",
    "create_attn",
    "create_model",
    "layers",
    "list_models",
    "load_weights",
    "optimize_for_inference",
    "profile",
    "register_model",
    "retrofit",
    "with_stn",
]
