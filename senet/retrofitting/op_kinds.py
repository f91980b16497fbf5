"""Which modules and functions of a forward count as what, for reading a CNN's structure.

Shared by the two ways retrofit reads a unit: a traced ``torch.fx`` graph (:mod:`.graph`) and a
recorded run (:mod:`.hook_reading`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from torch import nn

from senet.layers.detect import is_attention_module

ACT_NAMES = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "silu",
        "silu_",
        "gelu",
        "hardswish",
        "hardsigmoid",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "selu",
        "celu",
        "mish",
        "sigmoid",
        "tanh",
        "hardtanh",
        "prelu",
        "softplus",
    }
)
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
CAT_NAMES = frozenset({"cat", "concat", "concatenate"})
POOL_NAMES = frozenset({"max_pool2d", "avg_pool2d", "lp_pool2d", "max_pool2d_with_indices"})
CONV_FUNCTION_NAMES = frozenset({"conv1d", "conv2d", "conv3d", "linear"})
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)


def op_name(target: object) -> str:
    return getattr(target, "__name__", str(target))


def is_heavy_module(m: nn.Module) -> bool:
    return isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))


def heavy_count(module: nn.Module) -> int:
    """Number of conv and linear layers in ``module``, not counting those of attention modules."""
    if is_attention_module(module):
        return 0
    if is_heavy_module(module):
        return 1
    return sum(heavy_count(child) for child in module.children())


def downsampling_count(module: nn.Module) -> int:
    return sum(
        isinstance(m, POOLS)
        or (isinstance(m, nn.modules.conv._ConvNd) and any(s > 1 for s in m.stride))
        for m in module.modules()
    )


_N = TypeVar("_N")


def upstream(node: _N, inputs: Callable[[_N], Iterable[_N]]) -> set[_N]:
    """``node`` and every node reachable through ``inputs``: a traced graph's or a recorded run's
    dependencies, walked the same way."""
    seen: set[_N] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(inputs(n))
    return seen
