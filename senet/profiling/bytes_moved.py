"""Bytes an op moves: every tensor it reads (inputs, weights) and writes (outputs), at its dtype.

This is the traffic of eager execution, op by op: each op reads its operands from memory and
writes its results back. Caches and fusion, which can only lower it, are ignored. A broadcast
operand (stride 0, e.g. SE's gate expanded over H x W) counts the elements it holds, not the
ones it is broadcast to; an operand passed twice (``x * x``) is read once.
"""

from __future__ import annotations

from typing import Any

import torch

aten = torch.ops.aten

# Ops that overwrite their first argument without reading it.
_WRITE_ONLY_DESTINATION = frozenset({aten.copy_, aten.fill_, aten.zero_})


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the distinct elements ``tensor`` addresses: broadcast dims count once."""
    try:
        strides = tensor.stride()
    except RuntimeError:  # layouts without strides (sparse): count every element
        return tensor.numel() * tensor.element_size()
    elements = 1
    for size, stride in zip(tensor.shape, strides, strict=True):
        if stride != 0:
            elements *= size
    return elements * tensor.element_size()


def _tensors(values: Any) -> list[torch.Tensor]:
    """The tensors among an op's arguments or results (aten nests them at most in a list)."""
    if isinstance(values, torch.Tensor):
        return [values]
    if not isinstance(values, (list, tuple)):  # a scalar result, or None
        return []
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(t for t in value if isinstance(t, torch.Tensor))
    return found


def bytes_moved(packet: Any, args: Any, kwargs: dict[str, Any], out: Any) -> int:
    """Bytes read and written by one call of the aten op ``packet`` (an overload packet)."""
    kwargs = dict(kwargs)
    kwargs.pop("out", None)  # an out= tensor is written (counted with the outputs), not read
    inputs = _tensors([*args, *kwargs.values()])
    if packet in _WRITE_ONLY_DESTINATION and inputs:
        inputs = inputs[1:]
    read = {id(t): t for t in inputs}  # the same tensor twice is read once
    return sum(map(tensor_bytes, read.values())) + sum(map(tensor_bytes, _tensors(out)))
