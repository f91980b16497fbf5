"""The model zoo: ImageNet and CIFAR ResNets, VGG, BN-Inception, Inception-ResNet-v2, MobileNet,
ShuffleNet and Shake-Shake with any attention, a registry, checkpoint import."""

# Importing the families registers their models.
from senet.models import (  # noqa: F401
    attention_net,
    bninception,
    inception_resnet_v2,
    mobilenet,
    resnet,
    resnet_cifar,
    shake_shake,
    shufflenet,
    vgg,
)
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
