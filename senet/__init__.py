"""senet: Squeeze-and-Excitation networks and the attention modules around them."""

# The subpackages `profile` and `retrofit` are callable (senet.profile(model)); they stay modules,
# so `import senet.profile as p` and mock.patch("senet.profile.counter.x") work.
from senet import layers, profile, retrofit
from senet.layers import attention_names, create_attn
from senet.models import create_model, list_models, load_weights, register_model, with_stn
from senet.models.inference import optimize_for_inference
from senet.profile import compare
from senet.retrofit import RetrofitReport

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
