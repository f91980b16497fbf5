"""``train(config)``: build data, model, optimiser from a Config, check them, then ``fit``.

Every check that can fail (config, output folder, data, model/data agreement, the checkpoint to
resume from) runs before the first training step, so a mistake costs seconds, not an epoch.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.config import Config, ConfigError, save_config
from senet.data import skipped_note
from senet.train.checkpoint import CheckpointDir
from senet.train.distributed import World, init_world, wrap_ddp
from senet.train.ema import create_ema
from senet.train.epoch import Trainer, check_amp
from senet.train.fit_loop import RunOutput, fit
from senet.train.optim import create_optimizer, create_scheduler, scaled_lr
from senet.train.progress import MutedProgress, create_progress
from senet.train.provenance import run_provenance
from senet.train.resume import (
    RESUMABLE_CHANGES,
    ResumePoint,
    checkpoint_folder,
    config_differences,
    find_resume_state,
)
from senet.train.run_lock import RunFolderLock
from senet.train.run_log import RunLog
from senet.train.seed import seed_everything
from senet.train.setup import (
    build_data,
    check_model_fits_data,
    model_cost,
    model_for_data,
    prepare_run_dir,
    resolve_precision,
    restore_run,
    weights_metadata,
)
from senet.train.summary import RunSummary

__all__ = [
    "RESUMABLE_CHANGES",
    "check_model_fits_data",
    "config_differences",
    "model_cost",
    "prepare_run_dir",
    "train",
]


def train(config: Config, *, resume: str | Path | None = None) -> RunSummary:
    """Run one training job described by ``config``; return its summary (also summary.json).

    ``resume``: ``"auto"`` (the newest valid checkpoint in ``output_dir``, or a fresh start if
    there is none), a run folder, or a checkpoint file of the same run. Training continues
    from the exact step the checkpoint was written at (mid-epoch too) and ends with the
    weights and metrics an uninterrupted run would have.

    Under ``torchrun`` every process calls this; they train one model with DDP, rank 0 writes
    the run folder and draws the progress, and every rank returns the same summary.
    """
    wall_start = time.perf_counter()
    world = init_world(config.train.device)
    try:
        with RunFolderLock() as run_lock:  # held by rank 0, the one writer, until the end
            return _train(config, resume, world, wall_start, run_lock)
    finally:
        world.close()


def _train(
    config: Config,
    resume: str | Path | None,
    world: World,
    wall_start: float,
    run_lock: RunFolderLock,
) -> RunSummary:
    notes = [_settle_precision(config, world)]  # said once the progress display exists
    world.main_result(lambda: run_lock.claim_existing(config.output_dir))
    resume_path, resume_state = _find_checkpoint(config, resume, world, notes)
    seed_everything(config.train.seed, deterministic=config.train.deterministic)
    if world.device.type == "cuda" and not config.train.deterministic:
        torch.backends.cudnn.benchmark = True

    # Data first: a missing dataset is the commonest mistake, and the model needs its shape.
    train_set, val_set, info, train_loader, val_loader = build_data(config, world)
    model, model_kwargs, input_size, cost = model_for_data(config.model, info, val_set)
    # The run folder is made only now: a config that cannot build its model wrote nothing.
    run_dir = world.main_result(lambda: run_lock.claim(prepare_run_dir(config.output_dir, config)))
    trainer, lr = _build_trainer(config, model, len(train_loader), world)
    model = trainer.model  # on its device (and with SyncBatchNorm where asked)
    resume_point = None
    if resume_state is not None:
        restore_run(resume_state, resume_path, **_state_parts(trainer))
        resume_point = ResumePoint.from_state(resume_state, world, notes)
    if config.train.compile:
        # In place (state_dict keys stay the same). Static shapes: a last partial batch or the
        # eval batch costs a recompile, not slower symbolic kernels (and some backward
        # formulas, e.g. affine_grid's for an STN, have no symbolic-shape version).
        model.compile(dynamic=False)
    trainer.model = wrap_ddp(model, world)

    progress, output = _open_outputs(config, world, run_dir, resume_point)
    for note in notes:
        progress.log(note)
    steps = len(train_loader)
    if resume_point is not None:
        progress.log(
            f"resuming from {resume_path}: epoch {resume_point.epoch + 1}, step "
            f"{resume_point.totals.step}/{steps} "
            f"(global step {resume_point.epoch * steps + resume_point.totals.step})"
        )
    global_batch = config.data.batch_size * world.world_size
    facts = dict(  # what the summary says about the run's setup
        model=config.model.name,
        model_kwargs=model_kwargs,
        data=info.name,
        train_images=len(train_set),
        val_images=len(val_set),
        input_size=list(input_size),
        **cost,
        global_batch=global_batch,
        world_size=world.world_size,
        lr=lr,
    )
    progress.log(_start_line(config, facts, steps, world, run_dir))
    progress.log(f"data from {info.source}")
    output.weights_meta = weights_metadata(config, info, model_kwargs, input_size)
    output.extra_state = {"world_size": world.world_size, "global_batch": global_batch}
    try:
        result = fit(
            trainer,
            train_loader,
            val_loader,
            config=config,
            output=output,
            progress=progress,
            resume=resume_point,
        )
    finally:
        if output.run_log is not None:
            output.run_log.close()
    history = result.pop("history")
    if note := skipped_note(train_loader, val_loader):
        progress.log(note)
    summary = RunSummary(
        **facts,
        **result,
        wall_seconds=time.perf_counter() - wall_start,
        device=str(world.device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        host=platform.node(),
        pid=os.getpid(),
        **run_provenance(),
        config=asdict(config),
    )
    if output.run_log is not None:
        _write_results(config, summary, output, history, model, val_set, progress)
    progress.log(
        f"done in {summary.wall_seconds:.0f} s: best val top-1 {summary.best_top1:.2f}% "
        f"(epoch {summary.best_epoch}), final {summary.final_top1:.2f}% -> {run_dir}"
    )
    return summary


def _start_line(
    config: Config, facts: dict[str, Any], steps: int, world: World, run_dir: Path
) -> str:
    """The run log's line on what trains, on what data, how long and where."""
    m, t, f = config.model, config.train, facts
    procs = (
        f" ({config.data.batch_size} x {f['world_size']} processes)" if world.distributed else ""
    )
    return (
        f"training {m.name}{' + ' + m.retrofit.attn if m.retrofit else ''} "
        f"({f['params']:,} params, {f['macs'] / 1e6:,.1f} M MACs) on "
        f"{f['data']}: {f['train_images']:,} train / {f['val_images']:,} val images, "
        f"{t.epochs} epochs x {steps} steps, batch {f['global_batch']}{procs}, lr {f['lr']:.4g}, "
        f"{world.device}{', ' + t.amp if t.amp != 'none' else ''} -> {run_dir}"
    )


def _settle_precision(config: Config, world: World) -> str:
    """Resolve ``auto`` precision in place (before the resume check and the saved config: both
    then hold what ran) and refuse what the device cannot run; the run log's line about it."""
    t = config.train
    note = resolve_precision(t, world.device)
    try:  # the config allows fp16 with device=auto; here auto has become a device
        check_amp(t.amp, world.device)
    except ValueError as e:
        raise ConfigError(f"train.amp: {e}") from None
    if t.sync_bn and world.distributed and world.device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on GPUs only); on CPU "
            "set train.sync_bn=false: each process then normalises with its own batch"
        )
    return note


def _find_checkpoint(
    config: Config, resume: str | Path | None, world: World, notes: list[str]
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint ``resume`` names and its state (rank 0 reads; every rank gets the outcome
    or the error), or (None, None) for a fresh start."""

    def find() -> tuple[tuple[Path, dict[str, Any]] | None, list[str]]:
        found = None
        if resume is not None:
            found = find_resume_state(
                resume, config, world_size=world.world_size, report=notes.append
            )
        return found, notes

    found, notes[:] = world.main_result(find)
    return found if found is not None else (None, None)


def _build_trainer(
    config: Config, model: nn.Module, steps_per_epoch: int, world: World
) -> tuple[Trainer, float]:
    """The model on its device and layout, with optimiser, schedule, loss, scaler and EMA; the
    learning rate scaled to the global batch."""
    t, device = config.train, world.device
    if t.sync_bn and world.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state_dict keys
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    lr = scaled_lr(
        config.optim.lr, config.data.batch_size * world.world_size, config.optim.lr_base_batch
    )
    optimizer = create_optimizer(model, config.optim, lr)
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=t.label_smoothing),
        device=device,
        scheduler=create_scheduler(
            optimizer, config.schedule, epochs=t.epochs, steps_per_epoch=steps_per_epoch
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=t.amp == "fp16"),
        amp=t.amp,
        channels_last=t.channels_last,
        grad_clip=config.optim.grad_clip,
        ema=create_ema(model, t.ema_decay) if t.ema else None,
        world=world,
        skip_nonfinite=t.skip_nonfinite,
    )
    return trainer, lr


def _state_parts(trainer: Trainer) -> dict[str, Any]:
    """The parts a checkpoint restores into, by the names ``restore_training_state`` takes."""
    return {
        "model": trainer.model,
        "optimizer": trainer.optimizer,
        "scheduler": trainer.scheduler,
        "scaler": trainer.scaler,
        "ema": trainer.ema,
    }


def _open_outputs(
    config: Config, world: World, run_dir: Path, resume: ResumePoint | None
) -> tuple[Any, RunOutput]:
    """The progress display and, on rank 0, the saved config, run log and checkpoint folder."""
    if not world.is_main:
        return MutedProgress(), RunOutput()
    progress = create_progress(config.log.progress, log_every=config.log.log_every)
    save_config(config, run_dir / "config.yaml")
    run_log = RunLog(
        run_dir,
        tensorboard=config.log.tensorboard,
        rows=resume.history if resume is not None else [],
        notice=progress.log,
    )
    checkpoints = CheckpointDir(checkpoint_folder(run_dir), keep=config.train.keep_checkpoints)
    return progress, RunOutput(run_dir, run_log, checkpoints)


def _write_results(
    config: Config,
    summary: RunSummary,
    output: RunOutput,
    history: list[dict[str, Any]],
    model: nn.Module,
    val_set: Any,
    progress: Any,
) -> None:
    """Rank 0's end of the run: summary.json, the training curves, the STN's picture."""
    run_dir, run_log = output.run_dir, output.run_log
    summary.write(run_dir)
    if config.log.plots:
        run_log.rows = history
        run_log.plot(title=f"{config.model.name} on {summary.data}")
    if config.model.stn:  # what the STN learned: inputs beside its rectified outputs
        from senet.plots.stn import save_rectified

        save_rectified(model, val_set, run_dir / "stn_rectified.png", notice=progress.log)
