"""The model zoo: ImageNet and CIFAR ResNets, VGG, BN-Inception, Inception-ResNet-v2, MobileNet,
ShuffleNet and Shake-Shake with any attention, a registry, checkpoint import, and
``create_model``, the one builder (senet, ``torchvision:`` and ``timm:`` names)."""

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
from senet.models._registry import list_models, register_model
from senet.models.errors import CheckpointError, ModelError
from senet.models.factory import classifier_prefix, create_model
from senet.models.stn import STNClassifier, with_stn
from senet.models.weights import load_weights, read_weights, save_weights

__all__ = [
    "CheckpointError",
    "ModelError",
    "STNClassifier",
    "classifier_prefix",
    "create_model",
    "list_models",
    "load_weights",
    "read_weights",
    "register_model",
    "save_weights",
    "with_stn",
]
