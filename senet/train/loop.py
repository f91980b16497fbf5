"""The two loops: ``train_one_epoch`` (one pass of SGD steps) and ``evaluate`` (top-1/top-5)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from senet.train.batchnorm import drop_batchnorm_grads, freeze_batchnorm

# Called after each step with (step_in_epoch, steps_in_epoch, running metrics dict).
StepCallback = Callable[[int, int, dict[str, float]], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context: bf16 (CPU or CUDA), fp16 (CUDA only), or nothing."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' on CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Iterable[int]) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at C)."""
    ks = list(ks)
    kmax = min(max(ks), logits.shape[1])
    pred = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hit = pred.eq(targets[:, None])
    return [int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    *,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: str = "none",
    channels_last: bool = False,
    grad_clip: float | None = None,
    ema: AveragedModel | None = None,
    freeze_bn: bool = False,
    sync_every: int = 1,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """One epoch of: forward (autocast), loss, backward (scaled), clip, step, LR step, EMA update.

    ``freeze_bn``: BatchNorm layers run in eval mode (running statistics fixed) and their
    affine parameters get no update. ``sync_every``: read metrics back from the device every N
    steps (1 on CPU; more on CUDA avoids a host sync per step). Returns the epoch's mean
    ``loss``, ``top1`` (% on augmented training images), ``images``, ``seconds``, ``img_s``
    and the last ``lr``.
    """
    model.train()
    if freeze_bn:
        freeze_batchnorm(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    steps = len(loader)  # type: ignore[arg-type]
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    images = 0
    metrics: dict[str, float] = {}
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if freeze_bn:
            drop_batchnorm_grads(model)
        if grad_clip is not None:
            if scaler is not None and scaler.is_enabled():
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None and scaler.is_enabled():
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)

        loss_sum += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(dim=1) == y).sum()
        images += len(y)
        if (i + 1) % sync_every == 0 or i + 1 == steps:
            mean_loss = loss_sum.item() / images
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(
                    f"training loss is {mean_loss} at step {i + 1} of the epoch (or one of the "
                    f"{sync_every} before it); lower optim.lr, set optim.grad_clip, or check the "
                    "data for NaNs"
                )
            elapsed = time.perf_counter() - start
            metrics = {
                "loss": mean_loss,
                "top1": 100.0 * correct.item() / images,
                "images": float(images),
                "seconds": elapsed,
                "img_s": images / max(elapsed, 1e-9),
                "lr": lr,
            }
            if on_step is not None:
                on_step(i + 1, steps, metrics)
    if images == 0:
        raise RuntimeError("the training loader yielded no batch (is the dataset empty?)")
    return metrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    loss_fn: nn.Module | None = None,
    amp: str = "none",
    channels_last: bool = False,
    num_classes: int | None = None,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Mean ``loss`` (plain cross-entropy unless ``loss_fn``), ``top1``/``top5`` in %, ``img_s``.

    With ``num_classes``, also ``confusion``: a (C, C) int64 tensor, rows = true class, columns
    = predicted class, and ``per_class``: accuracy in % per true class (NaN where absent).
    """
    model.eval()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum, images, top1, top5 = 0.0, 0, 0, 0
    confusion = None
    if num_classes is not None:
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    steps = len(loader)  # type: ignore[arg-type]
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        if confusion is not None and logits.shape[1] != num_classes:
            raise ValueError(
                f"the model outputs {logits.shape[1]} classes but num_classes={num_classes}"
            )
        loss_sum += float(loss_fn(logits, y)) * len(y)
        c1, c5 = topk_correct(logits, y, (1, 5))
        top1, top5, images = top1 + c1, top5 + c5, images + len(y)
        if confusion is not None:
            pairs = y * num_classes + logits.argmax(dim=1)
            confusion += torch.bincount(pairs, minlength=num_classes**2).view_as(confusion)
        if on_step is not None:
            on_step(i + 1, steps, {"top1": 100.0 * top1 / images})
    if images == 0:
        raise RuntimeError("the evaluation loader yielded no batch (is the dataset empty?)")
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {
        "loss": loss_sum / images,
        "top1": 100.0 * top1 / images,
        "top5": 100.0 * top5 / images,
        "images": images,
        "seconds": elapsed,
        "img_s": images / max(elapsed, 1e-9),
    }
    if confusion is not None:
        confusion = confusion.cpu()
        totals = confusion.sum(dim=1).double()
        result["confusion"] = confusion
        result["per_class"] = (100.0 * confusion.diag().double() / totals).tolist()
    return result
