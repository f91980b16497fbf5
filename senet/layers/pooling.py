"""Global spatial pooling: the "squeeze" operator of SE-style attention."""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.validate import check_choice

# "none" keeps full resolution: the paper's NoSqueeze ablation (Table 16).
POOL_TYPES = ("avg", "max", "avgmax", "none")


class _MeanByMatmul(torch.autograd.Function):
    """Spatial mean as a (1 x HW) @ (HW x C) product per image; backward is a broadcast.

    PyTorch's CPU reductions are slow for bf16 (and for channels-last maps of any dtype), while
    its bf16 matmul runs on the matrix units with fp32 accumulation: 2-4x faster on a ResNet-50
    stage-2 map (benchmarks/bench_se_overhead.py measures the whole block).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, c, h, w = x.shape
        ctx.shape = x.shape
        if x.is_contiguous():  # (N, C, HW) @ (HW, 1)
            weights = x.new_full((h * w, 1), 1.0 / (h * w))
            return torch.matmul(x.view(n, c, h * w), weights).view(n, c, 1, 1)
        weights = x.new_full((1, h * w), 1.0 / (h * w))  # channels last: (1, HW) @ (N, HW, C)
        return torch.matmul(weights, x.permute(0, 2, 3, 1).view(n, h * w, c)).view(n, c, 1, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, c, h, w = ctx.shape
        return (grad / (h * w)).expand(n, c, h, w)


def _matmul_is_faster(x: torch.Tensor) -> bool:
    """Whether ``_MeanByMatmul`` beats ``Tensor.mean`` for this map (measured, see above)."""
    if x.device.type != "cpu" or x.dtype not in (torch.bfloat16, torch.float16):
        return False
    if torch.compiler.is_compiling():  # inductor writes its own fused reduction
        return False
    if x.shape[2] * x.shape[3] < 16:
        return False
    # benchmarks/bench_squeeze.py: with few channels and a large batch (CIFAR nets, 16-64
    # channels, batch 128) the batched product stays on one core and on 2 threads Tensor.mean is
    # 1.3-1.8x faster; not switched yet, since it changes SE's bf16 digits mid depth study.
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over H and W, (N, C, H, W) -> (N, C, 1, 1), by the fastest kernel for ``x``."""
    if _matmul_is_faster(x):
        return _MeanByMatmul.apply(x)
    return x.mean((2, 3), keepdim=True)


class GlobalPool2d(nn.Module):
    """Global pooling over H and W, keeping dims: (N, C, H, W) -> (N, C, 1, 1).

    ``"avg"`` is the paper's global average pooling (eq. 2), ``"max"`` its Table 11 alternative,
    ``"avgmax"`` the mean of the two, ``"none"`` the identity (no squeeze).
    """

    def __init__(
        self, pool_type: str = "avg", *, owner: str = "GlobalPool2d", arg: str = "pool_type"
    ) -> None:
        super().__init__()
        self.pool_type = check_choice(owner, arg, pool_type, POOL_TYPES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "avg":
            return spatial_mean(x)
        if self.pool_type == "max":
            return x.amax((2, 3), keepdim=True)
        if self.pool_type == "avgmax":
            return 0.5 * (spatial_mean(x) + x.amax((2, 3), keepdim=True))
        return x

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"
