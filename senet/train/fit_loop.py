"""``fit``: the loop over epochs around ``train_one_epoch`` and ``evaluate``, with the epoch
rows, the run's weights and checkpoints (every epoch, optionally every N steps)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from senet.config import Config
from senet.data.loader import set_epoch
from senet.models.weights import save_weights
from senet.train.checkpoint import CheckpointDir, training_state
from senet.train.distributed import broadcast_buffers, unwrap
from senet.train.epoch import (
    EpochTotals,
    NonFiniteLossError,
    Trainer,
    evaluate_loader,
    train_one_epoch,
)
from senet.train.progress import PlainProgress
from senet.train.resume import ResumePoint
from senet.train.run_log import RunLog
from senet.train.seed import epoch_seed, rng_state, set_rng_state
from senet.train.stop_signal import StopSignal, TrainingStopped


@dataclass
class RunOutput:
    """Where a run writes (rank 0 only; the other ranks pass an empty one): the weights in
    ``run_dir``, the metrics to ``run_log``, the training state to ``checkpoints``;
    ``weights_meta`` travels with the weights, ``extra_state`` with each checkpoint."""

    run_dir: Path | None = None
    run_log: RunLog | None = None
    checkpoints: CheckpointDir | None = None
    weights_meta: dict[str, Any] = field(default_factory=dict)
    extra_state: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    """The epoch rows so far (shared with the run log's) and the best validation result."""

    rows: list[dict[str, Any]]
    best: dict[str, float]
    run_log: RunLog | None = None

    def add(self, row: dict[str, Any]) -> bool:
        """Record an epoch's row; True when its val top-1 is the best so far."""
        improved = "val_top1" in row and row["val_top1"] > self.best["top1"]
        if improved:
            self.best = {
                "epoch": row["epoch"],
                "top1": row["val_top1"],
                "top5": row["val_top5"],
                "loss": row["val_loss"],
            }
        if self.run_log is not None:
            self.run_log.add_epoch(row)  # appends to the same list
        else:
            self.rows.append(row)
        return improved


class Checkpointer:
    """Writes the full training state on rank 0; every rank takes part and learns of a failure.

    ``enabled`` is the same on all ranks; ``last`` is the newest checkpoint written (for the
    message when training stops on a non-finite loss).
    """

    def __init__(self, trainer: Trainer, config: Config, output: RunOutput) -> None:
        self.trainer, self.config, self.output = trainer, config, output
        self.enabled = trainer.world.broadcast_object(output.checkpoints is not None)
        paths = output.checkpoints.paths() if output.checkpoints is not None else []
        self.last: Path | None = paths[-1] if paths else None

    def save(
        self, epochs_done: int, step: int, totals: EpochTotals, history: History, before=None
    ) -> None:
        """Checkpoint after global ``step``; ``before`` (rank 0) runs first, e.g. to save weights."""
        tr, world = self.trainer, self.trainer.world
        rngs = world.gather_objects(rng_state())

        def write() -> Path:
            if before is not None:
                before()
            state = training_state(
                model=unwrap(tr.model),
                optimizer=tr.optimizer,
                scheduler=tr.scheduler,
                scaler=tr.scaler,
                ema=tr.ema,
                epoch=epochs_done,
                step=step,
                rng=rngs,
                config=self.config.to_dict(),
                history=history.rows,
                best=history.best,
            )
            state["totals"] = asdict(totals)
            state.update(self.output.extra_state)
            return self.output.checkpoints.save(state, step=step)  # type: ignore[union-attr]

        self.last = world.main_result(write)


def fit(
    trainer: Trainer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    config: Config,
    output: RunOutput | None = None,
    progress: Any = None,
    resume: ResumePoint | None = None,
) -> dict[str, Any]:
    """Train from ``resume`` (default: the start) to ``config.train.epochs``; return the best and
    last metrics and the history.

    Each epoch: train (``_train_epoch``), validate (every ``train.eval_every`` epochs and after
    the last), log a row, save ``last`` and (when val top-1 improved) ``best`` weights, then
    checkpoint. With an empty ``output`` nothing is written. Resumed mid-epoch, the epoch
    continues with the next batch as if never stopped.
    """
    t, world = config.train, trainer.world
    output, resume = output or RunOutput(), resume or ResumePoint()
    progress = progress or PlainProgress(config.log.log_every)
    rows = output.run_log.rows if output.run_log is not None else list(resume.history)
    history = History(rows, dict(resume.best or {"epoch": -1, "top1": -math.inf}), output.run_log)
    checkpointer = Checkpointer(trainer, config, output)
    set_epoch(train_loader, resume.epoch)  # the whole epoch (a loader may have been left mid-way)
    steps_per_epoch = len(train_loader)
    with StopSignal().installed() as stop:
        for epoch in range(resume.epoch, t.epochs):
            # Resumed mid-epoch, the steps before the stop count toward this epoch's time.
            epoch_start = time.perf_counter() - (
                resume.totals.seconds if epoch == resume.epoch else 0
            )
            run = _Run(trainer, config, progress, output, checkpointer, history, resume, stop)
            row = _train_epoch(run, train_loader, epoch)
            # Every rank evaluates and saves rank 0's running statistics (see broadcast_buffers).
            for net in (unwrap(trainer.model), trainer.ema):
                if net is not None:
                    broadcast_buffers(net, world)
            if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
                row.update(_validate(trainer, val_loader, config, progress))
            row["epoch_seconds"] = time.perf_counter() - epoch_start
            improved = history.add(row)
            save = partial(_save_weights, trainer, output, row, best=improved)
            if checkpointer.enabled:
                step = (epoch + 1) * steps_per_epoch
                checkpointer.save(epoch + 1, step, EpochTotals(), history, before=save)
            elif world.is_main:
                save()
            progress.log(_epoch_line(row, t.epochs, improved))
            if epoch + 1 < t.epochs and stop.requested(world, trainer.device):
                raise _stopped((epoch + 1) * steps_per_epoch, checkpointer)
    return fit_result(history.rows, history.best, epochs=t.epochs)


def _stopped(step: int, checkpointer: Checkpointer) -> TrainingStopped:
    kept = (
        f"checkpoint {checkpointer.last}; rerun with --resume auto to continue from it"
        if checkpointer.enabled and checkpointer.last is not None
        else "no checkpoint is written without a run folder"
    )
    return TrainingStopped(step, kept)


@dataclass
class _Run:
    """What every epoch of ``fit`` works with."""

    trainer: Trainer
    config: Config
    progress: Any
    output: RunOutput
    checkpointer: Checkpointer
    history: History
    resume: ResumePoint
    stop: StopSignal


def _non_finite(error: NonFiniteLossError, checkpointer: Checkpointer) -> NonFiniteLossError:
    kept = (
        f"the last good checkpoint, {checkpointer.last}, is left as it was"
        if checkpointer.last is not None
        else "no checkpoint was written"
    )
    return NonFiniteLossError(f"{error}. Stopped; {kept}", step=error.step)


def _train_epoch(run: _Run, loader: DataLoader, epoch: int) -> dict[str, Any]:
    """Epoch ``epoch``'s training pass (continued from ``run.resume`` mid-epoch); its row so far."""
    trainer, progress, output, checkpointer = (
        run.trainer,
        run.progress,
        run.output,
        run.checkpointer,
    )
    resume, t, log_every = run.resume, run.config.train, run.config.log.log_every
    start = resume.totals if epoch == resume.epoch else EpochTotals()
    set_epoch(loader, epoch, skip_batches=start.step)
    reseed(epoch_seed(t.seed, epoch, trainer.world.rank))  # the epoch depends on these alone
    if start.step and resume.rng is not None:
        set_rng_state(resume.rng)  # where the interrupted run stood after start.step steps
    frozen = t.freeze_bn_epochs > 0 and epoch >= t.epochs - t.freeze_bn_epochs
    steps = start.step + len(loader)  # the whole epoch's
    base = epoch * steps

    def on_step(i: int, total: int, metrics: dict[str, float]) -> None:
        progress.update(i, total, metrics)
        if output.run_log is not None and (i % log_every == 0 or i == total):
            output.run_log.add_step(base + i, metrics)

    def on_checkpoint(totals: EpochTotals) -> None:
        checkpointer.save(epoch, base + totals.step, totals, run.history)

    def stop_requested() -> bool:
        return run.stop.requested(trainer.world, trainer.device)

    progress.start(f"epoch {epoch + 1}/{t.epochs}", steps)
    try:
        metrics = train_one_epoch(
            trainer,
            loader,
            freeze_bn=frozen,
            sync_every=1 if trainer.device.type == "cpu" else 10,
            on_step=on_step,
            start=start,
            first_step=base,
            checkpoint_every=t.checkpoint_every_steps if checkpointer.enabled else 0,
            on_checkpoint=on_checkpoint if checkpointer.enabled else None,
            stop_requested=stop_requested,
        )
    except TrainingStopped as e:
        raise _stopped(e.step, checkpointer) from None
    except NonFiniteLossError as e:
        raise _non_finite(e, checkpointer) from None
    finally:
        progress.stop()
    return {
        "epoch": epoch + 1,
        "lr": metrics["lr"],
        "train_loss": metrics["loss"],
        "train_top1": metrics["top1"],
        "train_img_s": metrics["img_s"],
        "train_skipped": int(metrics["skipped"]),
        "bn_frozen": int(frozen),
    }


def reseed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (an epoch's draws depend on this alone)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _save_weights(trainer: Trainer, output: RunOutput, row: dict[str, Any], *, best: bool) -> None:
    """``last.safetensors`` (and ``best`` when it improved, ``ema`` with EMA) in the run folder."""
    if output.run_dir is None:
        return
    meta = {**output.weights_meta, "epoch": row["epoch"], "val_top1": row.get("val_top1")}
    net, ema = unwrap(trainer.model), trainer.ema
    save_weights(output.run_dir / "last.safetensors", net, meta)
    if best:
        save_weights(output.run_dir / "best.safetensors", net, meta)
    if ema is not None:
        save_weights(output.run_dir / "ema.safetensors", ema.module, {**meta, "ema": True})


def fit_result(
    rows: list[dict[str, Any]], best: dict[str, float], *, epochs: int
) -> dict[str, Any]:
    """The best and last validation metrics, throughput and the history, from the epoch rows.

    ``train_seconds`` sums the rows' ``epoch_seconds``: a run resumed over several sessions
    reports the time of all its epochs, not of the last session's."""
    evaluated = [r for r in rows if "val_top1" in r]
    last = evaluated[-1] if evaluated else {}
    return {
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "best_top1": best["top1"],
        "best_top5": best.get("top5"),
        "final_top1": last.get("val_top1"),
        "final_top5": last.get("val_top5"),
        "final_loss": last.get("val_loss"),
        "final_ema_top1": last.get("ema_val_top1"),
        "final_flip_top1": last.get("val_flip_top1"),
        "skipped_batches": sum(int(r.get("train_skipped", 0)) for r in rows),
        "train_seconds": sum(float(r.get("epoch_seconds", 0.0)) for r in rows),
        "train_img_s": float(np.mean([r["train_img_s"] for r in rows])) if rows else None,
        "history": rows,
    }


def _validate(
    trainer: Trainer, loader: DataLoader, config: Config, progress: Any
) -> dict[str, float]:
    """The model's (and the EMA's) val loss/top-1/top-5 (and with flip TTA), as row entries."""
    ema: AveragedModel | None = trainer.ema
    row: dict[str, float] = {}
    for prefix, net, desc in (
        ("val_", unwrap(trainer.model), "  val"),
        ("ema_val_", ema.module if ema is not None else None, "  EMA val"),
    ):
        if net is None:
            continue
        progress.start(desc, len(loader))
        try:
            val = evaluate_loader(
                net,
                loader,
                device=trainer.device,
                amp=config.train.amp,
                channels_last=config.train.channels_last,
                on_step=progress.update,
                world=trainer.world,
                flip=config.train.eval_flip,
            )
        finally:
            progress.stop()
        keys = ("loss", "top1", "top5", "flip_loss", "flip_top1", "flip_top5")
        row.update({f"{prefix}{k}": val[k] for k in keys if k in val})
    return row


def _epoch_line(row: dict[str, Any], epochs: int, improved: bool) -> str:
    text = (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} "
        f"top-1 {row['train_top1']:.2f}%"
    )
    if "val_top1" in row:
        text += (
            f" | val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}% "
            f"top-5 {row['val_top5']:.2f}%"
        )
    if "val_flip_top1" in row:
        text += f" | flip TTA top-1 {row['val_flip_top1']:.2f}%"
    if "ema_val_top1" in row:
        text += f" | EMA top-1 {row['ema_val_top1']:.2f}%"
    text += f" | {row['train_img_s']:,.0f} img/s, {row['epoch_seconds']:.1f} s"
    if row.get("train_skipped"):
        text += f" [{row['train_skipped']} non-finite batches skipped]"
    if row["bn_frozen"]:
        text += " [BN frozen]"
    return text + (" *best*" if improved else "")
