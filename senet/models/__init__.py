"""The model zoo: ImageNet and CIFAR ResNets with any attention, a registry, checkpoint import."""

# Importing the families registers their models.
from senet.models import attention_net, resnet, resnet_cifar  # noqa: F401
from senet.models._registry import get_model_builder, list_models, register_model
from senet.models.factory import create_model
from senet.models.stn import STNClassifier, with_stn
from senet.models.weights import CheckpointError, load_weights

__all__ = [
    "CheckpointError",
    "STNClassifier",
    "create_model",
    "get_model_builder",
    "list_models",
    "load_weights",
    "register_model",
    "with_stn",
]
