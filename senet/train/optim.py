"""Optimiser, LR scaling with the global batch, and the per-step LR schedule (warm-up + decay)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from senet.config import ConfigError, OptimConfig, ScheduleConfig
from senet.layers.detect import outermost_attention
from senet.layers.spatial_transformer import SpatialTransformer


def scaled_lr(lr: float, global_batch: int, base_batch: int | None) -> float:
    """Linear scaling rule: ``lr * global_batch / base_batch`` (paper: 0.6 at 1024 = 0.15/256)."""
    return lr if base_batch is None else lr * global_batch / base_batch


def param_groups(
    model: nn.Module,
    weight_decay: float,
    no_wd_bn_bias: bool,
    *,
    lr: float | None = None,
    stn_lr_mult: float = 1.0,
    attn_weight_decay: float | None = None,
) -> list[dict]:
    """One group with ``weight_decay``; with ``no_wd_bn_bias`` a second, decay-free group.

    The decay-free group holds every parameter with fewer than 2 dimensions: biases and the
    affine scale/shift of normalisation layers (BatchNorm, GroupNorm, LayerNorm).
    ``stn_lr_mult`` != 1: the parameters of every ``SpatialTransformer`` get groups of their own
    at ``lr * stn_lr_mult`` (after the others, so group 0 keeps the classifier's rate).
    ``attn_weight_decay`` (not None): the parameters of every attention module (senet's and the
    SE-like blocks of other libraries) get groups of their own with that weight decay. Under
    SGD with momentum, decay shrinks weights that get weak gradients by about
    exp(-sum(lr) * wd / (1 - momentum)), and an excitation whose weights shrink gives the same
    gate for every image.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    stn: set[int] = set()
    if stn_lr_mult != 1.0:
        stn = {
            id(p)
            for m in model.modules()
            if isinstance(m, SpatialTransformer)
            for p in m.parameters()
        }
    attn: set[int] = set()
    if attn_weight_decay is not None:
        attn = {id(p) for _, m in outermost_attention(model) for p in m.parameters()} - stn
        if not any(id(p) in attn for p in trainable):
            raise ConfigError(
                "optim.attn_weight_decay is set, but the model has no attention module with "
                "trainable parameters; leave it unset (null) for this model"
            )
    own = stn | attn
    groups = _decay_groups([p for p in trainable if id(p) not in own], weight_decay, no_wd_bn_bias)
    if stn:
        if lr is None:
            raise ValueError("stn_lr_mult needs lr, the classifier's learning rate")
        stn_groups = _decay_groups(
            [p for p in trainable if id(p) in stn], weight_decay, no_wd_bn_bias
        )
        groups += [{**g, "lr": lr * stn_lr_mult} for g in stn_groups]
    if attn:
        groups += _decay_groups(
            [p for p in trainable if id(p) in attn], attn_weight_decay, no_wd_bn_bias
        )
    return groups


def _decay_groups(
    params: list[nn.Parameter], weight_decay: float, no_wd_bn_bias: bool
) -> list[dict]:
    if not no_wd_bn_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def create_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over ``param_groups``, at learning rate ``lr``."""
    groups = param_groups(
        model,
        cfg.weight_decay,
        cfg.no_wd_bn_bias,
        lr=lr,
        stn_lr_mult=cfg.stn_lr_mult,
        attn_weight_decay=cfg.attn_weight_decay,
    )
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optimiser {cfg.name!r}; expected 'sgd' or 'adamw'")


@dataclass
class LRSchedule:
    """LR multiplier as a function of the global step; a plain object so it checkpoints.

    Warm-up rises linearly from ``warmup_start`` to 1 over ``warmup_epochs``; then ``step``
    multiplies by ``gamma`` every ``step_size`` epochs, ``multistep`` at each milestone,
    ``cosine`` decays to ``min_lr_ratio`` at the end of training, ``constant`` stays at 1.
    """

    name: str
    steps_per_epoch: int
    epochs: int
    step_size: float = 30
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0
    warmup_start: float = 0.1
    min_lr_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        epoch = step / self.steps_per_epoch  # fractional epoch at the start of this step
        if epoch < self.warmup_epochs:
            return self.warmup_start + (1 - self.warmup_start) * epoch / self.warmup_epochs
        # Step decays act on whole epochs, as in the paper ("divided by 10 every 30 epochs").
        whole = math.floor(epoch + 1e-9)
        if self.name == "step":
            return self.gamma ** math.floor(whole / self.step_size + 1e-9)
        if self.name == "multistep":
            return self.gamma ** sum(whole >= m for m in self.milestones)
        if self.name == "cosine":
            total = self.epochs * self.steps_per_epoch
            start = self.warmup_epochs * self.steps_per_epoch
            # Reaches the floor just after the last step, so no step is wasted at the floor.
            t = min(1.0, (step - start) / max(1.0, total - start))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.name == "constant":
            return 1.0
        raise ValueError(f"unknown schedule {self.name!r}")


def create_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, *, epochs: int, steps_per_epoch: int
) -> LambdaLR:
    """A LambdaLR stepped once per optimiser step (not per epoch), so warm-up is smooth."""
    if steps_per_epoch < 1:
        raise ValueError("steps_per_epoch must be >= 1 (is the training set smaller than a batch?)")
    schedule = LRSchedule(
        name=cfg.name,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        step_size=cfg.step_size,
        milestones=tuple(cfg.milestones),
        gamma=cfg.gamma,
        warmup_epochs=cfg.warmup_epochs,
        warmup_start=cfg.warmup_start,
        min_lr_ratio=cfg.min_lr_ratio,
    )
    return LambdaLR(optimizer, schedule)
