"""The step and the two loops: ``train_step`` (one update), ``Trainer`` (what a run's steps
share: model, optimiser, loss, precision), ``train_one_epoch`` (one pass of steps, its metrics
kept by an ``EpochMeter`` and summed across ranks) and ``evaluate`` (top-1/top-5)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from senet.train.batchnorm import drop_batchnorm_grads, freeze_batchnorm
from senet.train.distributed import World, unwrap
from senet.train.stop_signal import TrainingStopped

# Called after each step with (step_in_epoch, steps_in_epoch, running metrics dict).
StepCallback = Callable[[int, int, dict[str, float]], None]
_NO_STEP = 2**62  # "no bad step yet", larger than any step


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (``step``: the global step, 1-based)."""

    def __init__(self, message: str, *, step: int) -> None:
        super().__init__(message)
        self.step = step

    def __reduce__(self) -> tuple:  # picklable, so it can travel between DDP ranks
        return _nonfinite_error, (str(self), self.step)


def _nonfinite_error(message: str, step: int) -> NonFiniteLossError:
    return NonFiniteLossError(message, step=step)


@dataclass
class EpochTotals:
    """Running sums of one epoch over all ranks: what a mid-epoch checkpoint must carry so the
    resumed epoch reports the metrics of an uninterrupted one."""

    step: int = 0  # steps of this epoch done (trained or skipped)
    loss_sum: float = 0.0  # sum of per-image losses
    correct: int = 0  # top-1 hits on the training batches
    images: int = 0  # images trained on
    skipped: int = 0  # batches skipped for a non-finite loss (train.skip_nonfinite)
    seconds: float = 0.0  # wall time of those steps, so a resumed epoch reports its whole time


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context: bf16 (CPU or CUDA), fp16 (CUDA only), or nothing."""
    check_amp(amp, device)
    if amp == "none":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run: fp16 autocast (with its grad scaler) is CUDA's."""
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp='fp16' needs a CUDA device, not {device}; use amp='bf16' on CPU")


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Iterable[int]) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at C)."""
    ks = list(ks)
    kmax = min(max(ks), logits.shape[1])
    pred = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hit = pred.eq(targets[:, None])
    return [int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def train_step(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    ema: AveragedModel | None = None,
    freeze_bn: bool = False,
) -> None:
    """One update from ``loss``: backward (scaled), clip, optimiser step, LR step, EMA update.

    ``freeze_bn``: BatchNorm affine parameters get no gradient (their statistics are the
    caller's: it runs those layers in eval mode).
    """
    scaled = scaler is not None and scaler.is_enabled()
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaled else loss).backward()
    if freeze_bn:
        drop_batchnorm_grads(model)
    if grad_clip is not None:
        if scaled:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaled:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if ema is not None:
        ema.update_parameters(unwrap(model))


def batch_to_device(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, *, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (in the model's memory format) and targets on ``device``."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(device, non_blocking=True, memory_format=memory_format)
    return x, y.to(device, non_blocking=True)


@dataclass
class Trainer:
    """What every training step of a run uses, fixed for the run.

    ``model`` may be DDP-wrapped (``world`` then says which rank this is). ``skip_nonfinite``:
    a batch whose loss is NaN/inf on any rank gets no update on all ranks (weights, BatchNorm
    statistics and EMA stay as they were; the LR schedule still advances); otherwise the epoch
    stops with ``NonFiniteLossError``.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    amp: str = "none"
    channels_last: bool = False
    grad_clip: float | None = None
    ema: AveragedModel | None = None
    world: World = None  # type: ignore[assignment]  # None: this process alone
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        check_amp(self.amp, self.device)
        self.world = self.world or World(device=self.device)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return batch_to_device(x, y, self.device, channels_last=self.channels_last)

    def train_batch(
        self, x: torch.Tensor, y: torch.Tensor, *, freeze_bn: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Forward, loss and ``train_step`` on one batch (already on the device): the detached
        (loss, logits), or None when the batch was skipped for a non-finite loss."""
        if self.skip_nonfinite:  # a skipped batch must not leave NaNs in BatchNorm's statistics
            buffers = [b.detach().clone() for b in self.model.buffers()]
        with autocast(self.device, self.amp):
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        if self.skip_nonfinite and _any_rank_nonfinite(torch.isfinite(loss.detach()), self.world):
            # Every rank skips together (a DDP backward on some ranks only would hang).
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers, strict=True):
                    b.copy_(saved)
            if self.scheduler is not None:
                self.scheduler.step()
            return None
        train_step(
            self.model,
            loss,
            self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            grad_clip=self.grad_clip,
            ema=self.ema,
            freeze_bn=freeze_bn,
        )
        return loss.detach(), logits.detach()


class EpochMeter:
    """An epoch's running loss, top-1 hits and image count, summed over ranks when read.

    The sums stay on the device between reads (no host sync per step on CUDA); ``read`` sums
    them over ranks and raises ``NonFiniteLossError`` naming the first bad step. Rank 0 starts
    from ``start``, the totals of the steps done before a resume.
    """

    def __init__(
        self, start: EpochTotals, *, steps: int, first_step: int, world: World, device: torch.device
    ) -> None:
        self.world, self.steps, self.first_step = world, steps, first_step
        self.sums = torch.zeros(2, device=device, dtype=torch.float64)  # [loss sum, correct]
        self.images_here = 0
        if world.is_main:
            self.sums += torch.tensor([start.loss_sum, start.correct], dtype=torch.float64).to(
                device
            )
            self.images_here = start.images
        self.first_bad = torch.full((), _NO_STEP, device=device, dtype=torch.int64)
        self.skipped = start.skipped
        self.seconds_before = start.seconds
        self.trained_here = 0  # images this rank trained on in this call (throughput)
        self.started = time.perf_counter()
        self.read_totals = EpochTotals()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, *, step: int) -> None:
        """Count one trained batch; ``step`` is its global step number (1-based)."""
        # Remember the first bad step without a host sync (checked at the next read).
        finite = torch.isfinite(loss)
        self.first_bad = torch.where(finite, self.first_bad, self.first_bad.clamp(max=step))
        self.sums[0] += loss.double() * len(y)
        self.sums[1] += (logits.argmax(dim=1) == y).sum()
        self.images_here += len(y)
        self.trained_here += len(y)

    def skip(self) -> None:
        self.skipped += 1

    def read(self, step: int, lr: float) -> dict[str, float]:
        """The epoch's metrics after its ``step``-th step, summed over ranks."""
        count = torch.tensor([self.images_here], device=self.sums.device, dtype=torch.float64)
        loss_sum, correct, images = self.world.all_reduce(torch.cat([self.sums, count])).tolist()
        if not math.isfinite(loss_sum):
            bad = int(self.world.all_reduce(self.first_bad.clone(), "min"))
            raise NonFiniteLossError(
                f"training loss is {loss_sum / max(images, 1)} at step {bad} "
                f"({bad - self.first_step} of the epoch's {self.steps}); lower optim.lr, set "
                "optim.grad_clip, check the data for NaNs, or skip such batches with "
                "train.skip_nonfinite=true",
                step=bad,
            )
        elapsed = time.perf_counter() - self.started
        self.read_totals = EpochTotals(
            step, loss_sum, int(correct), int(images), self.skipped, self.seconds_before + elapsed
        )
        return {
            "loss": loss_sum / max(images, 1),
            "top1": 100.0 * correct / max(images, 1),
            "images": images,
            "seconds": elapsed,
            "img_s": self.trained_here * self.world.world_size / max(elapsed, 1e-9),
            "lr": lr,
            "skipped": float(self.skipped),
        }


def train_one_epoch(
    trainer: Trainer,
    loader: Iterable,
    *,
    freeze_bn: bool = False,
    sync_every: int = 1,
    on_step: StepCallback | None = None,
    start: EpochTotals | None = None,
    first_step: int = 0,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[EpochTotals], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """One epoch of ``trainer.train_batch``; metrics summed over ranks.

    ``freeze_bn``: BatchNorm layers run in eval mode (running statistics fixed) and their
    affine parameters get no update. ``sync_every``: read metrics back from the device every N
    steps (1 on CPU; more on CUDA avoids a host sync per step). Returns the epoch's mean
    ``loss``, ``top1`` (% on augmented training images), ``images``, ``seconds``, ``img_s``,
    ``skipped`` and the last ``lr``.

    Resuming: ``loader`` yields the epoch's remaining batches and ``start`` holds the totals of
    the steps before them (on rank 0; the other ranks start from zero). ``first_step`` is the
    global step number of the epoch's first step, for messages and for ``checkpoint_every``:
    after every global step divisible by it (except the epoch's last), ``on_checkpoint`` gets
    the totals so far, on every rank.

    ``stop_requested`` (asked at each metrics read, on every rank alike): when it says yes
    before the epoch's last step, ``on_checkpoint`` gets the totals and the epoch ends with
    :class:`TrainingStopped` (see ``senet.train.stop_signal``).
    """
    trainer.model.train()
    if freeze_bn:
        freeze_batchnorm(trainer.model)
    start = start or EpochTotals()
    steps = start.step + len(loader)  # type: ignore[arg-type]
    meter = EpochMeter(
        start, steps=steps, first_step=first_step, world=trainer.world, device=trainer.device
    )
    metrics: dict[str, float] = {}
    for i, (x, y) in enumerate(loader, start=start.step):
        x, y = trainer.to_device(x, y)
        lr = trainer.lr  # this step's (the scheduler moves it in the step)
        trained = trainer.train_batch(x, y, freeze_bn=freeze_bn)
        if trained is None:
            meter.skip()
        else:
            meter.add(*trained, y, step=first_step + i + 1)
        checkpoint_now = (
            on_checkpoint is not None
            and checkpoint_every > 0
            and (first_step + i + 1) % checkpoint_every == 0
            and i + 1 < steps
        )
        stop_now = (
            stop_requested is not None
            and (i + 1) % sync_every == 0
            and i + 1 < steps  # at the epoch's end the fit loop checkpoints and stops
            and stop_requested()
        )
        if (i + 1) % sync_every == 0 or i + 1 == steps or checkpoint_now:
            metrics = meter.read(i + 1, lr)
            if on_step is not None:
                on_step(i + 1, steps, metrics)
            if (checkpoint_now or stop_now) and on_checkpoint is not None:
                on_checkpoint(meter.read_totals)
            if stop_now:
                raise TrainingStopped(first_step + i + 1)
    if steps == 0:
        raise RuntimeError("the training loader yielded no batch (is the dataset empty?)")
    if not metrics.get("images"):
        raise NonFiniteLossError(
            f"every one of the epoch's {steps} batches had a non-finite loss and was skipped",
            step=first_step + steps,
        )
    return metrics


def _any_rank_nonfinite(finite: torch.Tensor, world: World) -> bool:
    flag = (~finite).to(torch.int32)
    return bool(world.all_reduce(flag, "max"))


def _batch_sums(logits: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor:
    """One batch's loss sum, top-1 hits and top-5 hits (float64, to add to a running total)."""
    top1, top5 = topk_correct(logits, y, (1, 5))
    loss_sum = float(loss_fn(logits, y)) * len(y)
    return torch.tensor([loss_sum, top1, top5], dtype=torch.float64)


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    loss_fn: nn.Module | None = None,
    amp: str = "none",
    channels_last: bool = False,
    num_classes: int | None = None,
    on_step: StepCallback | None = None,
    world: World | None = None,
    flip: bool = False,
) -> dict[str, Any]:
    """Mean ``loss`` (plain cross-entropy unless ``loss_fn``), ``top1``/``top5`` in %, ``img_s``.

    With ``flip``, also ``flip_loss``/``flip_top1``/``flip_top5``: the same on the mean logits of
    each image and its mirror image (horizontal-flip test-time augmentation, for data trained
    with flips); the plain metrics and the confusion matrix stay single-view.

    With ``num_classes``, also ``confusion``: a (C, C) int64 tensor, rows = true class, columns
    = predicted class, and ``per_class``: accuracy in % per true class (NaN where absent).
    Under DDP (``world``) each rank evaluates its share of an unpadded split (see
    ``create_loader``) and the counts are summed, so every image counts exactly once.
    """
    world = world or World(device=device)
    model.eval()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    # Per view (single, then flip TTA): loss sum, top-1 hits, top-5 hits.
    sums = torch.zeros(2 if flip else 1, 3, dtype=torch.float64)
    images = 0
    confusion = None
    if num_classes is not None:
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    steps = len(loader)  # type: ignore[arg-type]
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = batch_to_device(x, y, device, channels_last=channels_last)
        with autocast(device, amp):
            logits = model(x)
            mirrored = model(x.flip(-1)) if flip else None
        logits = logits.float()
        if confusion is not None and logits.shape[1] != num_classes:
            raise ValueError(
                f"the model outputs {logits.shape[1]} classes but num_classes={num_classes}"
            )
        sums[0] += _batch_sums(logits, y, loss_fn)
        if mirrored is not None:
            sums[1] += _batch_sums((logits + mirrored.float()) / 2, y, loss_fn)
        images += len(y)
        if confusion is not None:
            pairs = y * num_classes + logits.argmax(dim=1)
            confusion += torch.bincount(pairs, minlength=num_classes**2).view_as(confusion)
        if on_step is not None:
            on_step(i + 1, steps, {"top1": 100.0 * float(sums[0, 1]) / images})
    totals = torch.cat([sums.flatten(), torch.tensor([images], dtype=torch.float64)])
    totals = world.all_reduce(totals.to(device)).cpu()
    sums, images = totals[:-1].view_as(sums).tolist(), int(totals[-1])
    if confusion is not None:
        world.all_reduce(confusion)
    if images == 0:
        raise RuntimeError("the evaluation loader yielded no batch (is the dataset empty?)")
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {}
    for prefix, (loss_sum, top1, top5) in zip(("", "flip_")[: len(sums)], sums, strict=True):
        result[f"{prefix}loss"] = loss_sum / images
        result[f"{prefix}top1"] = 100.0 * top1 / images
        result[f"{prefix}top5"] = 100.0 * top5 / images
    result.update(images=images, seconds=elapsed, img_s=images / max(elapsed, 1e-9))
    if confusion is not None:
        confusion = confusion.cpu()
        totals = confusion.sum(dim=1).double()
        result["confusion"] = confusion
        result["per_class"] = (100.0 * confusion.diag().double() / totals).tolist()
    return result
