"""``fit``: the epoch loop around ``train_one_epoch`` and ``evaluate``, with logging and saving."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from senet.data.loader import set_epoch
from senet.train.checkpoint import save_checkpoint, save_weights, training_state
from senet.train.config import Config
from senet.train.loop import evaluate, train_one_epoch
from senet.train.progress import PlainProgress
from senet.train.run_log import RunLog
from senet.train.seed import epoch_seed, rng_state


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
) -> dict[str, Any]:
    """Train from ``start_epoch`` to ``config.train.epochs``; return the best and last metrics.

    Each epoch: reseed (so the epoch depends only on the seed and its index), train, validate
    (every ``train.eval_every`` epochs and after the last), log a row, save ``last`` and (when
    val top-1 improves) ``best`` weights, then the full training state to ``checkpoint.pt``.
    With ``run_dir=None`` nothing is written.
    """
    t = config.train
    run_dir = Path(run_dir) if run_dir is not None else None
    progress = progress or PlainProgress(config.log.log_every)
    best = dict(best or {"epoch": -1, "top1": -math.inf})
    sync_every = 1 if device.type == "cpu" else 10
    rows = run_log.rows if run_log is not None else []
    step = start_epoch * len(train_loader)
    started = time.perf_counter()
    for epoch in range(start_epoch, t.epochs):
        set_epoch(train_loader, epoch)
        seed = epoch_seed(t.seed, epoch)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        frozen = t.freeze_bn_epochs > 0 and epoch >= t.epochs - t.freeze_bn_epochs
        epoch_start = time.perf_counter()

        def on_step(i: int, total: int, metrics: dict[str, float], _base: int = step) -> None:
            progress.update(i, total, metrics)
            if run_log is not None and (i % config.log.log_every == 0 or i == total):
                run_log.add_step(_base + i, metrics)

        progress.start(f"epoch {epoch + 1}/{t.epochs}", len(train_loader))
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
            )
        finally:
            progress.stop()
        step += len(train_loader)

        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": train_metrics["lr"],
            "train_loss": train_metrics["loss"],
            "train_top1": train_metrics["top1"],
            "train_img_s": train_metrics["img_s"],
            "bn_frozen": int(frozen),
        }
        if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            val = _validate(model, val_loader, device, config, progress, "  val")
            row.update({f"val_{k}": val[k] for k in ("loss", "top1", "top5")})
            if ema is not None:
                ema_val = _validate(ema.module, val_loader, device, config, progress, "  EMA val")
                row.update({f"ema_val_{k}": ema_val[k] for k in ("loss", "top1", "top5")})
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
        if run_dir is not None:
            meta = {**(weights_meta or {}), "epoch": epoch + 1, "val_top1": row.get("val_top1")}
            save_weights(run_dir / "last.safetensors", model, meta)
            if improved:
                save_weights(run_dir / "best.safetensors", model, meta)
            if ema is not None:
                save_weights(run_dir / "ema.safetensors", ema.module, {**meta, "ema": True})
            state = training_state(
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                ema=ema,
                epoch=epoch + 1,
                step=step,
                rng=rng_state(),
                config=config.to_dict(),
                history=rows,
                best=best,
            )
            save_checkpoint(run_dir / "checkpoint.pt", state)
        progress.log(_epoch_line(row, t.epochs, improved))

    evaluated = [r for r in rows if "val_top1" in r]
    last = evaluated[-1] if evaluated else {}
    return {
        "epochs": t.epochs,
        "best_epoch": best["epoch"],
        "best_top1": best["top1"],
        "best_top5": best.get("top5"),
        "final_top1": last.get("val_top1"),
        "final_top5": last.get("val_top5"),
        "final_loss": last.get("val_loss"),
        "final_ema_top1": last.get("ema_val_top1"),
        "train_seconds": time.perf_counter() - started,
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
    if row["bn_frozen"]:
        text += " [BN frozen]"
    return text + (" *best*" if improved else "")
