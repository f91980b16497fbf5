"""Leaf op classes for the roofline: conv, FC, BN, ReLU, pools, the scale, ... by aten op name.

A timed eager forward under ``torch.inference_mode`` sees composite ops (``conv2d``,
``linear``, ``batch_norm``) where the counting pass sees what they decompose into
(``convolution``, ``addmm``, ``native_batch_norm``): both names map to one class, so counted
FLOPs and bytes meet measured time. Ops inside an attention module get the prefix
``"attention "``: SE's squeeze is ``"attention global pool"``, its gate ``"attention sigmoid"``.
"""

from __future__ import annotations

from typing import Any

ATTENTION_PREFIX = "attention "

# class -> aten op names (in-place variants, "relu_", are matched without their underscore)
_CLASSES: dict[str, str] = {
    "conv": "convolution _convolution _convolution_mode conv1d conv2d conv3d conv_transpose1d "
    "conv_transpose2d conv_transpose3d cudnn_convolution mkldnn_convolution _slow_conv2d_forward "
    "convolution_overrideable",
    "FC": "linear mm addmm bmm baddbmm matmul",
    "BN": "batch_norm _batch_norm_impl_index native_batch_norm _native_batch_norm_legit "
    "_native_batch_norm_legit_no_training _native_batch_norm_legit_functional cudnn_batch_norm "
    "miopen_batch_norm _batch_norm_with_update _batch_norm_no_update",
    "norm": "layer_norm native_layer_norm group_norm native_group_norm",
    "ReLU": "relu threshold clamp_min",
    "global pool": "mean sum amax amin max min adaptive_avg_pool1d adaptive_avg_pool2d "
    "_adaptive_avg_pool2d adaptive_avg_pool3d _adaptive_avg_pool3d adaptive_max_pool1d "
    "adaptive_max_pool2d adaptive_max_pool3d",
    "pool": "avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d "
    "max_pool1d_with_indices max_pool2d_with_indices max_pool3d_with_indices mkldnn_max_pool2d",
    "scale": "mul div",
    "scale+add": "addcmul",  # a gate's scale fused with the residual add after it
    "add": "add sub rsub",
    "copy": "cat stack copy clone _to_copy contiguous pad constant_pad_nd repeat flip roll "
    "index_select gather upsample_nearest1d upsample_nearest2d upsample_nearest3d",
    # Activations keep their own names; the rest (views, no-op casts, ...) is "other".
    "sigmoid": "sigmoid",
    "hardsigmoid": "hardsigmoid",
    "tanh": "tanh",
    "hardtanh": "hardtanh clamp",
    "SiLU": "silu",
    "hardswish": "hardswish",
    "GELU": "gelu",
    "leaky ReLU": "leaky_relu",
    "ELU": "elu",
    "softmax": "softmax _softmax",
    "exp": "exp",
    "max/min": "maximum minimum",
}

_BY_NAME = {name: label for label, names in _CLASSES.items() for name in names.split()}


def op_class(packet: Any, in_attention: bool = False) -> str:
    """The class of an aten op (overload packet): ``"conv"``, ``"attention sigmoid"``, ..."""
    name = getattr(packet, "__name__", str(packet))
    base = _BY_NAME.get(name) or _BY_NAME.get(name.rstrip("_"), "other")
    return ATTENTION_PREFIX + base if in_attention else base
