"""BatchNorm freezing for the last epochs (SENet-154's train-test consistency trick)."""

from __future__ import annotations

from torch import nn


def batchnorm_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm (1d/2d/3d, SyncBatchNorm) in ``model``."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(model: nn.Module) -> int:
    """Put every BatchNorm in eval mode: running statistics stop updating; return their count.

    Call it after ``model.train()`` at the start of each frozen epoch. The affine parameters
    are kept fixed by ``drop_batchnorm_grads`` before each optimiser step; their
    ``requires_grad`` is left alone so a DDP wrapper's reducer is not disturbed.
    """
    modules = batchnorm_modules(model)
    for m in modules:
        m.eval()
    return len(modules)


def drop_batchnorm_grads(model: nn.Module) -> None:
    """Set BatchNorm weight/bias grads to None: optimisers then skip them (no step, no decay)."""
    for m in batchnorm_modules(model):
        for p in (m.weight, m.bias):
            if p is not None:
                p.grad = None
