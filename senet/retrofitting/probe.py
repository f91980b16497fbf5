"""One forward pass with a sample input: every module's shapes and call count, and the stage of
a feature map (its resolution relative to the network's first)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from senet.profiling.timing import eval_mode


@dataclass
class Probe:
    """What one forward pass with a sample input showed about every module (keyed by id)."""

    input_hw: tuple[int, int]
    out_shapes: dict[int, tuple[int, ...] | None] = field(default_factory=dict)
    in_shapes: dict[int, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    min_level: int = 0

    def level(self, shape: tuple[int, ...]) -> int:
        """log2 of the stride of a 4-D feature map relative to the input, rounded."""
        return round(math.log2(self.input_hw[0] / shape[-2]))

    def stage(self, shape: tuple[int, ...] | None) -> int | None:
        """Stage number of a feature map: 1 for the network's first resolution, +1 per halving."""
        if shape is None or len(shape) != 4:
            return None
        return self.level(shape) - self.min_level + 1

    def out_shape(self, module: nn.Module) -> tuple[int, ...] | None:
        return self.out_shapes.get(id(module))

    def not_a_feature_map(self, shape: tuple[int, ...] | None) -> str | None:
        """Why a tensor of ``shape`` is not an (N, C, H, W) feature map of the probe input, or
        None when it is one."""
        if shape is None:
            return "not a tensor"
        if len(shape) != 4:
            return f"shape {shape}, not (N, C, H, W)"
        # Convs keep the input's aspect ratio in the last two dims; a channels-last tensor
        # (N, H, W, C) of a transformer-style block has its channels there instead, and
        # attention would pool over the wrong dims. Only C close to W escapes this test.
        h, w = shape[-2:]
        expected_h = w * self.input_hw[0] / self.input_hw[1]
        if abs(h - expected_h) > max(1.5, 0.1 * expected_h):
            return (
                f"shape {shape}, whose last two dims are not the "
                f"{self.input_hw[0]}x{self.input_hw[1]} input's grid scaled down: it looks "
                "channels-last (N, H, W, C), as in transformer-style blocks, and attention "
                "needs (N, C, H, W)"
            )
        return None

    def call_count(self, module: nn.Module) -> int:
        return self.calls.get(id(module), 0)


def tensors_in(value: object) -> Iterator[torch.Tensor]:
    """The tensors in a module's arguments or result: nested lists, tuples and dict values."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)


def probe_model(model: nn.Module, sample: torch.Tensor) -> Probe:
    """Run ``model(sample)`` once, recording each module's input/output shapes and call count.

    The caller puts the model in eval mode under ``torch.no_grad()``.
    """
    probe = Probe(input_hw=(sample.shape[-2], sample.shape[-1]))

    def pre_hook(module: nn.Module, args: tuple[object, ...]) -> None:
        key = id(module)
        probe.calls[key] = probe.calls.get(key, 0) + 1
        if key not in probe.in_shapes:
            probe.in_shapes[key] = tuple(tuple(t.shape) for t in tensors_in(args))

    def hook(module: nn.Module, args: tuple[object, ...], output: object) -> None:
        key = id(module)
        if key not in probe.out_shapes:
            probe.out_shapes[key] = (
                tuple(output.shape) if isinstance(output, torch.Tensor) else None
            )

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    try:
        model(sample)
    finally:
        for handle in handles:
            handle.remove()
    levels = [
        probe.level(shape)
        for m in model.modules()
        if isinstance(m, nn.modules.conv._ConvNd)
        and (shape := probe.out_shapes.get(id(m))) is not None
        and len(shape) == 4
    ]
    probe.min_level = min(levels) if levels else 0
    return probe


@contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the analysis passes; every module's mode restored after."""
    with eval_mode(model), torch.no_grad():
        yield


def reference_tensor(model: nn.Module) -> torch.Tensor:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t
    return torch.zeros(())


def random_input(shape: Sequence[int], ref: torch.Tensor) -> torch.Tensor:
    """A random input from a private generator: retrofitting leaves the global RNG alone."""
    if ref.device.type == "meta":  # shapes only (a model built under torch.device("meta"))
        return torch.empty(tuple(shape), device="meta", dtype=ref.dtype)
    generator = torch.Generator(device=ref.device).manual_seed(0)
    return torch.randn(tuple(shape), generator=generator, device=ref.device).to(ref.dtype)
