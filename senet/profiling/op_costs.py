"""Cost table for the ops that torch's FlopCounterMode leaves out: pooling, gates, scaling, norms.

``torch.utils.flop_counter`` counts convolutions and matrix products (2 FLOPs per multiply-add)
and nothing else. The SE block's own work is elsewhere: the squeeze is a mean, the gate a
sigmoid, the scale a broadcast multiply. This table gives each such op a cost of one operation
per element, the convention of the SE paper's complexity figures:

- reductions and global / adaptive pools (the squeeze) cost one op per element they read;
- windowed pools cost one op per output element per window position;
- element-wise maths (activations, gates, arithmetic, normalisation) costs one op per element
  it writes.

Data movement (views, ``cat``, copies, nearest-neighbour resampling) is free; the ops that copy
are listed (:data:`DATA_MOVEMENT`) so that the bytes they move are counted
(:mod:`senet.profiling.bytes_moved`). The formulas take shapes, the way
``FlopCounterMode(custom_mapping=...)`` calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import torch

# What senet.profile counts, said beside every result it prints.
CONVENTION = (
    "MACs = multiply-adds of conv and linear layers + the attention modules' own element-wise "
    "work (squeeze pooling, gates, scaling) at one op per element; BN, ReLU and residual adds "
    "are not counted (the SE paper's 'GFLOPs'). "
    "FLOPs = 2 x conv/linear MACs + every counted element-wise op (BN, activations, adds, "
    "pooling, gates), one per element. "
    "Bytes = what each op reads (inputs, weights) and writes (outputs) at their dtypes, op by op "
    "as eager execution runs them (caches ignored); FLOP/B = FLOPs / bytes. "
    "Activations = output elements of conv and linear layers."
)

aten = torch.ops.aten

Shape = Sequence[int]


def _first_shape(out_shape: Any) -> Shape:
    """The shape of an op's (first) output: ops like max_pool2d_with_indices return several."""
    if isinstance(out_shape, (tuple, list)) and out_shape and not isinstance(out_shape[0], int):
        return out_shape[0]
    return out_shape


def _window_area(kernel_size: int | Sequence[int], spatial_dims: int) -> int:
    if isinstance(kernel_size, int):
        return kernel_size**spatial_dims
    if len(kernel_size) == 1:
        return kernel_size[0] ** spatial_dims
    return prod(kernel_size)


def output_elements(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One op per element written: activations, gates, arithmetic, normalisation."""
    return prod(_first_shape(out_shape))


def input_elements(x_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One op per element read: reductions (mean, amax, ...) and global / adaptive pools."""
    if not isinstance(x_shape, (tuple, list)):  # a scalar operand, e.g. max(a, 0.5)
        return prod(_first_shape(out_shape))
    return prod(x_shape)


def no_ops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Data movement: no arithmetic (its bytes are counted elsewhere)."""
    return 0


def windowed_pool(spatial_dims: int) -> Callable[..., int]:
    """One op per output element per window position, for ``{avg,max}_pool{1,2,3}d``."""

    def cost(x_shape: Shape, kernel_size: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        return prod(_first_shape(out_shape)) * _window_area(kernel_size, spatial_dims)

    return cost


def _packets(*names: str, inplace: bool = True) -> list[Any]:
    """The aten overload packets of ``names`` that this torch build has (and their in-place twins)."""
    found = []
    for name in names:
        for variant in (name, f"{name}_") if inplace else (name,):
            if hasattr(aten, variant):
                found.append(getattr(aten, variant))
    return found


REDUCTIONS = _packets(
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "_adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
)

WINDOWED_POOLS: dict[Any, int] = {
    **dict.fromkeys(_packets("avg_pool1d", "max_pool1d", "max_pool1d_with_indices"), 1),
    **dict.fromkeys(_packets("avg_pool2d", "max_pool2d", "max_pool2d_with_indices"), 2),
    **dict.fromkeys(_packets("avg_pool3d", "max_pool3d", "max_pool3d_with_indices"), 3),
}

ELEMENTWISE = _packets(
    # gates and activations (the paper's Table 12 compares sigmoid, tanh and ReLU gates)
    "sigmoid",
    "hardsigmoid",
    "tanh",
    "relu",
    "clamp",
    "clamp_min",
    "clamp_max",
    "hardtanh",
    "silu",
    "hardswish",
    "gelu",
    "leaky_relu",
    "elu",
    "softmax",
    "_softmax",
    "exp",
    # arithmetic: the scale x * s, the CBAM sum, (1 + M) * T, residual adds; addcmul is a scale
    # fused with the residual add that follows it, one op per element like the scale alone
    "mul",
    "div",
    "add",
    "sub",
    "rsub",
    "maximum",
    "minimum",
    "addcmul",
    # normalisation, one op per element (not counted by the paper: BN folds into the conv)
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional",
    "cudnn_batch_norm",
    "miopen_batch_norm",
    "_batch_norm_with_update",
    "_batch_norm_no_update",
    "native_layer_norm",
    "native_group_norm",
    # resampling that computes (nearest-neighbour is a copy, hence free)
    "upsample_bilinear2d",
    "upsample_bicubic2d",
    "grid_sampler_2d",
)

ELEMENTWISE_COSTS: dict[Any, Callable[..., int]] = {
    **dict.fromkeys(ELEMENTWISE, output_elements),
    **dict.fromkeys(REDUCTIONS, input_elements),
    **{packet: windowed_pool(dims) for packet, dims in WINDOWED_POOLS.items()},
}
"""aten overload packet -> cost formula (shapes in, op count out), for the ops in the table."""

# The ops whose outputs are "activations" in the pycls / fvcore sense: conv and linear outputs.
ACTIVATION_OPS = _packets(
    "convolution",
    "_convolution",
    "cudnn_convolution",
    "_slow_conv2d_forward",
    "convolution_overrideable",
    "mm",
    "addmm",
    "bmm",
    "baddbmm",
    inplace=False,
)

# Ops that only move data: free in FLOPs, but their bytes count (concatenation, copies, casts,
# padding, nearest-neighbour resampling, gathers).
DATA_MOVEMENT = _packets(
    "cat",
    "stack",
    "copy",
    "clone",
    "_to_copy",
    "constant_pad_nd",
    "repeat",
    "flip",
    "roll",
    "index_select",
    "gather",
    "upsample_nearest1d",
    "upsample_nearest2d",
    "upsample_nearest3d",
)
