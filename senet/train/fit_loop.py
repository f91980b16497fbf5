"""``fit``: the epoch loop around ``train_one_epoch`` and ``evaluate``, with logging, saving and
checkpoints (every epoch, optionally every N steps)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from senet.config import Config
from senet.data.loader import set_epoch
from senet.models.weights import save_weights
from senet.train.checkpoint import CheckpointDir, training_state
from senet.train.distributed import World, broadcast_buffers, unwrap
from senet.train.epoch import EpochTotals, NonFiniteLossError, evaluate, train_one_epoch
from senet.train.progress import PlainProgress
from senet.train.run_log import RunLog
from senet.train.seed import epoch_seed, rng_state, set_rng_state


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    config: Config,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    loss_fn: nn.Module,
    device: torch.device,
    ema: AveragedModel | None = None,
    run_dir: str | Path | None = None,
    run_log: RunLog | None = None,
    progress: Any = None,
    weights_meta: dict[str, Any] | None = None,
    start_epoch: int = 0,
    best: dict[str, float] | None = None,
    world: World | None = None,
    start: EpochTotals | None = None,
    rng: dict[str, Any] | None = None,
    checkpoints: CheckpointDir | None = None,
    extra_state: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train from ``start_epoch`` to ``config.train.epochs``; return the best and last metrics.

    Each epoch: reseed (so the epoch depends only on the seed, its index and the rank), train,
    validate (every ``train.eval_every`` epochs and after the last), log a row, save ``last``
    and (when val top-1 improves) ``best`` weights to ``run_dir``, then the full training state
    to ``checkpoints`` (also every ``train.checkpoint_every_steps`` steps). With
    ``run_dir=None`` and ``checkpoints=None`` nothing is written.

    ``model`` may be DDP-wrapped (``world`` then says which rank this is; only rank 0 passes
    ``run_dir``, ``run_log`` and ``checkpoints``). Resuming: ``history`` holds the rows of the
    epochs done (``run_log.rows`` where there is a run log); mid-epoch, ``start`` holds the
    totals of ``start_epoch``'s steps already done and ``rng`` this rank's random state at
    that point, and the epoch continues with the next batch as if never stopped.
    """
    t = config.train
    world = world or World(device=device)
    run_dir = Path(run_dir) if run_dir is not None else None
    progress = progress or PlainProgress(config.log.log_every)
    best = dict(best or {"epoch": -1, "top1": -math.inf})
    sync_every = 1 if device.type == "cpu" else 10
    rows = run_log.rows if run_log is not None else list(history or [])
    set_epoch(train_loader, start_epoch)  # the whole epoch (a loader may have been left mid-way)
    steps_per_epoch = len(train_loader)
    start = start or EpochTotals()
    saving = world.broadcast_object(checkpoints is not None)
    last_saved: list[Path | None] = [
        checkpoints.paths()[-1] if checkpoints and checkpoints.paths() else None
    ]
    net = unwrap(model)
    started = time.perf_counter()

    def save(epochs_done: int, global_step: int, totals: EpochTotals, write_weights=None) -> None:
        """Checkpoint (rank 0 writes; every rank takes part and learns of a failure)."""
        rngs = world.gather_objects(rng_state())

        def write() -> Path:
            if write_weights is not None:
                write_weights()
            state = training_state(
                model=net,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                ema=ema,
                epoch=epochs_done,
                step=global_step,
                rng=rngs,
                config=config.to_dict(),
                history=rows,
                best=best,
            )
            state["totals"] = asdict(totals)
            state.update(extra_state or {})
            return checkpoints.save(state, step=global_step)  # type: ignore[union-attr]

        last_saved[0] = world.main_result(write)

    for epoch in range(start_epoch, t.epochs):
        resuming = epoch == start_epoch and start.step > 0
        set_epoch(train_loader, epoch, skip_batches=start.step if resuming else 0)
        reseed(epoch_seed(t.seed, epoch, world.rank))
        if resuming and rng is not None:
            set_rng_state(rng)  # where the interrupted run stood after start.step steps
        frozen = t.freeze_bn_epochs > 0 and epoch >= t.epochs - t.freeze_bn_epochs
        epoch_start = time.perf_counter()
        base = epoch * steps_per_epoch

        def on_step(i: int, total: int, metrics: dict[str, float], _base: int = base) -> None:
            progress.update(i, total, metrics)
            if run_log is not None and (i % config.log.log_every == 0 or i == total):
                run_log.add_step(_base + i, metrics)

        def on_checkpoint(totals: EpochTotals, _epoch: int = epoch, _base: int = base) -> None:
            save(_epoch, _base + totals.step, totals)

        progress.start(f"epoch {epoch + 1}/{t.epochs}", steps_per_epoch)
        try:
            train_metrics = train_one_epoch(
                model,
                train_loader,
                optimizer,
                loss_fn,
                device=device,
                scheduler=scheduler,
                scaler=scaler,
                amp=t.amp,
                channels_last=t.channels_last,
                grad_clip=config.optim.grad_clip,
                ema=ema,
                freeze_bn=frozen,
                sync_every=sync_every,
                on_step=on_step,
                world=world,
                start=start if resuming else None,
                first_step=base,
                skip_nonfinite=t.skip_nonfinite,
                checkpoint_every=t.checkpoint_every_steps if saving else 0,
                on_checkpoint=on_checkpoint if saving else None,
            )
        except NonFiniteLossError as e:
            kept = (
                f"the last good checkpoint, {last_saved[0]}, is left as it was"
                if last_saved[0] is not None
                else "no checkpoint was written"
            )
            raise NonFiniteLossError(f"{e}. Stopped; {kept}", step=e.step) from None
        finally:
            progress.stop()
        step = base + steps_per_epoch

        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": train_metrics["lr"],
            "train_loss": train_metrics["loss"],
            "train_top1": train_metrics["top1"],
            "train_img_s": train_metrics["img_s"],
            "train_skipped": int(train_metrics["skipped"]),
            "bn_frozen": int(frozen),
        }
        # Every rank evaluates and saves rank 0's running statistics (see broadcast_buffers).
        broadcast_buffers(net, world)
        if ema is not None:
            broadcast_buffers(ema, world)
        if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            ema_net = ema.module if ema is not None else None
            for prefix, evaluated, desc in (
                ("val_", net, "  val"),
                ("ema_val_", ema_net, "  EMA val"),
            ):
                if evaluated is not None:
                    val = _validate(evaluated, val_loader, device, config, progress, desc, world)
                    row.update({f"{prefix}{k}": val[k] for k in ("loss", "top1", "top5")})
        row["epoch_seconds"] = time.perf_counter() - epoch_start

        improved = "val_top1" in row and row["val_top1"] > best["top1"]
        if improved:
            best = {
                "epoch": epoch + 1,
                "top1": row["val_top1"],
                "top5": row["val_top5"],
                "loss": row["val_loss"],
            }
        if run_log is not None:
            run_log.add_epoch(row)
        else:
            rows.append(row)

        def write_weights(_row: dict = row, _improved: bool = improved, _epoch: int = epoch):
            meta = {**(weights_meta or {}), "epoch": _epoch + 1, "val_top1": _row.get("val_top1")}
            save_run_weights(run_dir, net, ema, meta, best=_improved)

        if saving:
            save(epoch + 1, step, EpochTotals(), write_weights=write_weights)
        elif run_dir is not None and world.is_main:
            write_weights()
        progress.log(_epoch_line(row, t.epochs, improved))

    return fit_result(rows, best, epochs=t.epochs, seconds=time.perf_counter() - started)


def reseed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (an epoch's draws depend on this alone)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_run_weights(
    run_dir: Path | None,
    net: nn.Module,
    ema: AveragedModel | None,
    meta: dict[str, Any],
    *,
    best: bool,
) -> None:
    """``last.safetensors`` (and ``best`` when it improved, ``ema`` with EMA) in ``run_dir``."""
    if run_dir is None:
        return
    save_weights(run_dir / "last.safetensors", net, meta)
    if best:
        save_weights(run_dir / "best.safetensors", net, meta)
    if ema is not None:
        save_weights(run_dir / "ema.safetensors", ema.module, {**meta, "ema": True})


def fit_result(
    rows: list[dict[str, Any]], best: dict[str, float], *, epochs: int, seconds: float
) -> dict[str, Any]:
    """The best and last validation metrics, throughput and the history, from the epoch rows."""
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
        "skipped_batches": sum(int(r.get("train_skipped", 0)) for r in rows),
        "train_seconds": seconds,
        "train_img_s": float(np.mean([r["train_img_s"] for r in rows])) if rows else None,
        "history": rows,
    }


def _validate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    config: Config,
    progress: Any,
    desc: str,
    world: World,
) -> dict:
    progress.start(desc, len(loader))
    try:
        return evaluate(
            model,
            loader,
            device=device,
            amp=config.train.amp,
            channels_last=config.train.channels_last,
            on_step=progress.update,
            world=world,
        )
    finally:
        progress.stop()


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
    if "ema_val_top1" in row:
        text += f" | EMA top-1 {row['ema_val_top1']:.2f}%"
    text += f" | {row['train_img_s']:,.0f} img/s, {row['epoch_seconds']:.1f} s"
    if row.get("train_skipped"):
        text += f" [{row['train_skipped']} non-finite batches skipped]"
    if row["bn_frozen"]:
        text += " [BN frozen]"
    return text + (" *best*" if improved else "")
