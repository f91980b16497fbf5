"""Known public checkpoints and the preprocessing each model expects (``model.pretrained_cfg``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The datasets own their statistics; a model's pretrained_cfg repeats the ones it was trained on.
from senet.data.cifar import STATS as _CIFAR_STATS
from senet.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD

CIFAR10_MEAN, CIFAR10_STD = _CIFAR_STATS["cifar10"]

# Checkpoint key layouts senet reads (see weights.py):
#   "senet"       senet's own module names;
#   "torchvision" torchvision and timm ``resnet.py`` (``resnet50``, ``seresnet50``,
#                 ``seresnext50_32x4d``, gluon ports): stride on the 3x3 conv, max pool padding 1;
#   "cadene"      Cadene's pretrainedmodels ``senet.py`` and timm's ``legacy_*`` SENets: the
#                 authors' Caffe models, stem max pool with ceil_mode and no padding.
#   and the other families' public layouts (family_layouts.py): "torchvision_vgg",
#   "cadene_bninception", "inception_resnet_v2" (Cadene and timm), "timm_mobilenetv1".
LAYOUTS = (
    "senet",
    "torchvision",
    "cadene",
    "torchvision_vgg",
    "cadene_bninception",
    "inception_resnet_v2",
    "timm_mobilenetv1",
)

_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download"
_TORCHVISION = "https://download.pytorch.org/models"
_GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1"


@dataclass(frozen=True)
class KnownWeights:
    """A public ImageNet checkpoint: where it lives, its key layout and its preprocessing."""

    url: str
    layout: str
    origin: str
    interpolation: str = "bilinear"
    crop_pct: float = 0.875


# timm's legacy_seresnet18/34 weights are not listed: timm's legacy basic block has a ReLU between
# its last BN and the SE block, which the paper's block (and senet's) does not.
# Every URL ends in "-<sha256 prefix>.pth", checked on download as torch.hub's check_hash does.
# The Cadene files are mirrored by timm's release; the SENets there are the authors' Caffe
# weights converted by Cadene (pretrainedmodels feeds them RGB in [0, 1] with ImageNet mean/std).
KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "resnet18": KnownWeights(f"{_TORCHVISION}/resnet18-f37072fd.pth", "torchvision", "torchvision"),
    "resnet34": KnownWeights(f"{_TORCHVISION}/resnet34-b627a593.pth", "torchvision", "torchvision"),
    "resnet50": KnownWeights(f"{_TORCHVISION}/resnet50-0676ba61.pth", "torchvision", "torchvision"),
    "resnet101": KnownWeights(
        f"{_TORCHVISION}/resnet101-63fe2227.pth", "torchvision", "torchvision"
    ),
    "resnet152": KnownWeights(
        f"{_TORCHVISION}/resnet152-394f9c45.pth", "torchvision", "torchvision"
    ),
    "resnext50_32x4d": KnownWeights(
        f"{_TORCHVISION}/resnext50_32x4d-7cdf4587.pth", "torchvision", "torchvision"
    ),
    "resnext101_32x4d": KnownWeights(
        f"{_GLUON}/gluon_resnext101_32x4d-b253c8c4.pth",
        "torchvision",
        "GluonCV port (timm resnext101_32x4d.gluon_in1k)",
        interpolation="bicubic",
    ),
    "vgg16_bn": KnownWeights(
        f"{_TORCHVISION}/vgg16_bn-6c64b313.pth", "torchvision_vgg", "torchvision vgg16_bn"
    ),
    "se_resnet50": KnownWeights(
        f"{_TIMM}/v0.1-cadene/se_resnet50-ce0d4300.pth", "cadene", "Cadene se_resnet50 (Caffe)"
    ),
    "se_resnet101": KnownWeights(
        f"{_TIMM}/v0.1-cadene/se_resnet101-7e38fcc6.pth", "cadene", "Cadene se_resnet101 (Caffe)"
    ),
    "se_resnet152": KnownWeights(
        f"{_TIMM}/v0.1-cadene/se_resnet152-d17c99b7.pth", "cadene", "Cadene se_resnet152 (Caffe)"
    ),
    "se_resnext50_32x4d": KnownWeights(
        f"{_TIMM}/v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
        "cadene",
        "Cadene se_resnext50_32x4d (Caffe), via timm legacy_seresnext50_32x4d.in1k",
    ),
    "se_resnext101_32x4d": KnownWeights(
        f"{_TIMM}/v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
        "cadene",
        "Cadene se_resnext101_32x4d (Caffe), via timm legacy_seresnext101_32x4d.in1k",
    ),
    "senet154": KnownWeights(
        f"{_TIMM}/v0.1-weights/legacy_senet154-e9eb9fe6.pth",
        "cadene",
        "Cadene senet154 (Caffe), via timm legacy_senet154.in1k",
    ),
}


def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...], in_chans: int) -> Any:
    # Other channel counts get the mean of the RGB statistics per channel: a neutral default
    # that keeps len(mean) == in_chans; set the dataset's own values for real use.
    if in_chans == len(mean):
        return mean, std
    return (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans


def imagenet_cfg(name: str, in_chans: int = 3) -> dict[str, Any]:
    """Preprocessing for an ImageNet model: the paper's resize-256 / centre-crop-224 evaluation."""
    known = KNOWN_WEIGHTS.get(name)
    mean, std = _channel_stats(IMAGENET_MEAN, IMAGENET_STD, in_chans)
    return {
        "input_size": (in_chans, 224, 224),
        "mean": mean,
        "std": std,
        "input_range": (0.0, 1.0),
        "input_space": "RGB",
        "crop_pct": known.crop_pct if known else 0.875,
        "interpolation": known.interpolation if known else "bilinear",
        "url": known.url if known else None,
        "weights_layout": known.layout if known else None,
        "weights_origin": known.origin if known else None,
        "first_conv": "stem.conv1",
        "classifier": "fc",
    }


def cifar_cfg(in_chans: int = 3) -> dict[str, Any]:
    """Preprocessing for a CIFAR model: 32x32 input, CIFAR-10 statistics, no resize or crop."""
    mean, std = _channel_stats(CIFAR10_MEAN, CIFAR10_STD, in_chans)
    return {
        "input_size": (in_chans, 32, 32),
        "mean": mean,
        "std": std,
        "input_range": (0.0, 1.0),
        "input_space": "RGB" if in_chans == 3 else "gray" if in_chans == 1 else None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "url": None,
        "weights_layout": None,
        "weights_origin": None,
        "first_conv": "stem.conv1",
        "classifier": "fc",
    }


def family_cfg(
    name: str,
    in_chans: int,
    *,
    size: int = 224,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    crop_pct: float = 0.875,
    first_conv: str,
    classifier: str = "fc",
) -> dict[str, Any]:
    """``imagenet_cfg`` for a family whose input size, statistics or module names differ."""
    mean, std = _channel_stats(mean, std, in_chans)
    known = KNOWN_WEIGHTS.get(name)
    return {
        **imagenet_cfg(name, in_chans),
        "input_size": (in_chans, size, size),
        "mean": mean,
        "std": std,
        "crop_pct": known.crop_pct if known else crop_pct,
        "first_conv": first_conv,
        "classifier": classifier,
    }
