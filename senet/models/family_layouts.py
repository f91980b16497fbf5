"""Checkpoint layouts of the public VGG, BN-Inception, Inception-ResNet-v2 and MobileNet models,
renamed to senet's module names (used by ``senet.models.weights``).

* ``torchvision_vgg``: torchvision ``vgg16_bn`` (``features.N``, ``classifier.N``);
* ``cadene_bninception``: Cadene's pretrainedmodels ``bninception`` (flat Caffe names);
* ``inception_resnet_v2``: Cadene's ``inceptionresnetv2`` and timm's ``inception_resnet_v2``
  (senet keeps their module names; only the classifier is renamed);
* ``timm_mobilenetv1``: timm's ``mobilenetv1_100`` (``conv_stem``, ``blocks.i.j``).

torchvision's VGG and Cadene's BN-Inception give their convs a bias that a BN follows; senet's
convs have none. A bias b before a BN is the same as a BN running mean lowered by b, so each bias
is folded into its BN's running mean: the model computes the same function in eval mode, and in
training the batch mean removes b in both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

StateDict = dict[str, torch.Tensor]
FAMILY_LAYOUTS = (
    "torchvision_vgg",
    "cadene_bninception",
    "inception_resnet_v2",
    "timm_mobilenetv1",
)


class LayoutError(ValueError):
    """A checkpoint that looks like a known layout but holds a key senet cannot place."""


def detect_family_layout(keys: set[str]) -> str | None:
    """The family layout of a checkpoint's keys, or None if it is none of them."""
    if "features.0.weight" in keys and "classifier.0.weight" in keys:
        return "torchvision_vgg"
    if "conv1_7x7_s2.weight" in keys:
        return "cadene_bninception"
    if "conv2d_1a.conv.weight" in keys and "fc.weight" not in keys:
        return "inception_resnet_v2"
    mobilenet_v2_or_later = any(".conv_pwl." in k or k.startswith("conv_head.") for k in keys)
    if "conv_stem.weight" in keys and "blocks.0.0.conv_dw.weight" in keys:
        return None if mobilenet_v2_or_later else "timm_mobilenetv1"
    return None


def _fold_bias(out: StateDict, bias: torch.Tensor, bn: str, source_bn: str) -> None:
    """BN(conv(x) + b) == BN'(conv(x)) with BN' running mean = running mean - b."""
    if f"{bn}.running_mean" not in out:
        raise LayoutError(f"conv bias before {source_bn} but {source_bn}.running_mean is missing")
    out[f"{bn}.running_mean"] = out[f"{bn}.running_mean"] - bias


def _torchvision_vgg(state: Mapping[str, torch.Tensor]) -> StateDict:
    # Conv indices in features: consecutive convs of a stage are 3 apart (conv, BN, ReLU); a
    # max pool between stages adds one.
    convs = sorted(
        int(k.split(".")[1])
        for k in state
        if re.fullmatch(r"features\.\d+\.weight", k) and state[k].dim() == 4
    )
    names, stage, j = {}, 1, 0
    for prev, index in zip([None, *convs], convs, strict=False):
        if prev is not None and index - prev != 3:
            stage, j = stage + 1, 0
        j += 1
        names[index] = f"features.conv{stage}_{j}"
    head = {"classifier.0": "pre_logits.0", "classifier.3": "pre_logits.3", "classifier.6": "fc"}
    out: StateDict = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        if module in head:
            out[f"{head[module]}.{param}"] = value
            continue
        index = int(module.split(".")[1])
        if index in names:
            if param != "bias":
                out[f"{names[index]}.conv.{param}"] = value
        elif index - 1 in names:
            out[f"{names[index - 1]}.bn.{param}"] = value
        else:
            raise LayoutError(f"torchvision VGG key {key!r} is neither a conv nor its BN")
    for index, name in names.items():
        if f"features.{index}.bias" in state:
            _fold_bias(out, state[f"features.{index}.bias"], f"{name}.bn", f"features.{index + 1}")
    return out


_BNI_UNITS = {
    "1x1": "branch1x1",
    "3x3_reduce": "branch3x3.0",
    "3x3": "branch3x3.1",
    "double_3x3_reduce": "branch_double.0",
    "double_3x3_1": "branch_double.1",
    "double_3x3_2": "branch_double.2",
    "pool_proj": "branch_pool.1",
}


def _bninception_path(name: str) -> str:
    if name in ("conv1_7x7_s2", "conv2_3x3_reduce", "conv2_3x3"):
        return f"stem.{name}"
    match = re.fullmatch(r"inception_(\d[a-e])_(\w+)", name)
    if match is None or match[2] not in _BNI_UNITS:
        raise LayoutError(f"Cadene BN-Inception module {name!r} has no place in senet's model")
    return f"inception_{match[1]}.{_BNI_UNITS[match[2]]}"


def _cadene_bninception(state: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    biases = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        if module == "last_linear":
            out[f"fc.{param}"] = value
        elif module.endswith("_bn"):
            out[f"{_bninception_path(module[:-3])}.bn.{param}"] = value
        elif param == "bias":
            biases[module] = value
        else:
            out[f"{_bninception_path(module)}.conv.{param}"] = value
    for module, bias in biases.items():
        _fold_bias(out, bias, f"{_bninception_path(module)}.bn", f"{module}_bn")
    return out


def _inception_resnet_v2(state: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        if module in ("last_linear", "classif"):
            # Cadene's file has 1001 outputs, class 0 being "background"; pretrainedmodels drops it.
            out[f"fc.{param}"] = value[1:] if value.shape[0] == 1001 else value
        else:
            out[key] = value
    return out


def _timm_mobilenetv1(state: Mapping[str, torch.Tensor]) -> StateDict:
    pairs = sorted({tuple(map(int, k.split(".")[1:3])) for k in state if k.startswith("blocks.")})
    flat = {pair: index for index, pair in enumerate(pairs)}
    parts = {"conv_dw": "dw.conv", "bn1": "dw.bn", "conv_pw": "pw.conv", "bn2": "pw.bn"}
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith("conv_stem."):
            out["stem.conv." + key[len("conv_stem.") :]] = value
        elif key.startswith("bn1."):
            out["stem.bn." + key[len("bn1.") :]] = value
        elif key.startswith("classifier."):
            out["fc." + key[len("classifier.") :]] = value
        elif key.startswith("blocks."):
            _, i, j, part, param = key.split(".", 4)
            if part not in parts:
                raise LayoutError(f"timm MobileNet v1 key {key!r}: no {part!r} in senet's block")
            out[f"blocks.{flat[int(i), int(j)]}.{parts[part]}.{param}"] = value
        else:
            raise LayoutError(f"timm MobileNet v1 key {key!r} has no place in senet's model")
    return out


# Input conventions of imported weights that differ from senet's defaults for the family.
# Cadene's BN-Inception is the Caffe model: BGR images in [0, 255] minus the Caffe mean.
LAYOUT_PREPROCESSING: dict[str, dict[str, object]] = {
    "cadene_bninception": {
        "input_space": "BGR",
        "input_range": (0.0, 255.0),
        "mean": (104.0, 117.0, 128.0),
        "std": (1.0, 1.0, 1.0),
    },
}

_CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor]], StateDict]] = {
    "torchvision_vgg": _torchvision_vgg,
    "cadene_bninception": _cadene_bninception,
    "inception_resnet_v2": _inception_resnet_v2,
    "timm_mobilenetv1": _timm_mobilenetv1,
}


def convert_family_state_dict(state: Mapping[str, torch.Tensor], layout: str) -> StateDict:
    """Rename (and fold conv biases of) a checkpoint in ``layout`` to senet's module names."""
    return _CONVERTERS[layout](state)
