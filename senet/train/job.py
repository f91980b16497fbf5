"""``train(config)``: build data, model, optimiser from a Config, check them, then ``fit``.

Every check that can fail (config, output folder, data, model/data agreement, the checkpoint to
resume from) runs before the first training step, so a mistake costs seconds, not an epoch.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.config import Config, ConfigError, save_config
from senet.data import skipped_note
from senet.models.compiling import compile_in_place, residual_stages
from senet.train.checkpoint import CheckpointDir
from senet.train.distributed import World, init_world, unwrap, wrap_ddp
from senet.train.ema import create_ema
from senet.train.epoch import Trainer, check_amp
from senet.train.fast_path import FastPath, check_explicit, recorded_fast_path, settle_fast_path
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
    restore_run,
    weights_metadata,
)
from senet.train.step_race import Workload
from senet.train.summary import RunSummary
from senet.train.workloads import run_workload

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


@dataclass
class _Built:
    """What a job builds and checks before its first step."""

    trainer: Trainer
    train_loader: Any
    val_loader: Any
    val_set: Any
    facts: dict[str, Any]  # what the summary says about the run's setup
    weights_meta: dict[str, Any]
    fast: FastPath
    run_dir: Path
    resume_path: Path | None
    resume_point: ResumePoint | None
    notes: list[str]  # said once the progress display exists


def _train(
    config: Config,
    resume: str | Path | None,
    world: World,
    wall_start: float,
    run_lock: RunFolderLock,
) -> RunSummary:
    run = _build(config, resume, world, run_lock)
    progress, output = _open_outputs(config, world, run.run_dir, run.resume_point)
    for note in run.notes:
        progress.log(note)
    steps, point = len(run.train_loader), run.resume_point
    if point is not None:
        progress.log(
            f"resuming from {run.resume_path}: epoch {point.epoch + 1}, step "
            f"{point.totals.step}/{steps} (global step {point.epoch * steps + point.totals.step})"
        )
    progress.log(_start_line(config, run.facts, steps, world, run.run_dir))
    output.weights_meta = run.weights_meta
    output.extra_state = {
        "world_size": world.world_size,
        "global_batch": run.facts["global_batch"],
        "fast_path": run.fast.to_dict(),  # a resumed run's summary still shows what was timed
    }
    try:
        result = fit(
            run.trainer,
            run.train_loader,
            run.val_loader,
            config=config,
            output=output,
            progress=progress,
            resume=point,
        )
    finally:
        if output.run_log is not None:
            output.run_log.close()
    history = result.pop("history")
    if note := skipped_note(run.train_loader, run.val_loader):
        progress.log(note)
    summary = RunSummary(
        **run.facts,
        **result,
        wall_seconds=time.perf_counter() - wall_start,
        device=str(world.device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        host=platform.node(),
        pid=os.getpid(),
        **run_provenance(),
        fast_path=run.fast.to_dict(),
        config=asdict(config),
    )
    if output.run_log is not None:
        model = unwrap(run.trainer.model)
        _write_results(config, summary, output, history, model, run.val_set, progress)
    progress.log(
        f"done in {summary.wall_seconds:.0f} s: best val top-1 {summary.best_top1:.2f}% "
        f"(epoch {summary.best_epoch}), final {summary.final_top1:.2f}% -> {run.run_dir}"
    )
    return summary


def _build(
    config: Config, resume: str | Path | None, world: World, run_lock: RunFolderLock
) -> _Built:
    """Check, build and restore everything the run needs, settle its fast path, and make its
    folder (only once everything that can fail before a step has passed)."""
    _check_device_settings(config, world)
    notes: list[str] = []
    world.main_result(lambda: run_lock.claim_existing(config.output_dir))
    resume_path, resume_state = _find_checkpoint(config, resume, world, notes)
    seed_everything(config.train.seed, deterministic=config.train.deterministic)
    if world.device.type == "cuda" and not config.train.deterministic:
        torch.backends.cudnn.benchmark = True
    # Data first: a missing dataset is the commonest mistake, and the model needs its shape.
    data = build_data(config, world)
    train_set, val_set, info, train_loader, val_loader = data
    built = model_for_data(config.model, info, val_set)
    model, model_kwargs, input_size, cost = built
    workload = run_workload(config, world, data, built)
    fast = _settle_fast_path(config, world, resume_state, workload)
    notes += [f"data from {info.source}", *fast.log_lines()]
    # The run folder is made only now: a config that cannot build its model wrote nothing.
    run_dir = world.main_result(lambda: run_lock.claim(prepare_run_dir(config.output_dir, config)))
    trainer, lr = _build_trainer(config, model, len(train_loader), world)
    resume_point = None
    if resume_state is not None:
        restore_run(resume_state, resume_path, **_state_parts(trainer))
        resume_point = ResumePoint.from_state(resume_state, world, notes)
    compile_in_place(trainer.model, fast.mode.compile)  # in place: state_dict keys, hooks stay
    trainer.model = wrap_ddp(trainer.model, world)
    facts = _facts(config, world, model_kwargs, (train_set, val_set, info), input_size, cost)
    facts["lr"] = lr
    return _Built(
        trainer=trainer,
        train_loader=train_loader,
        val_loader=val_loader,
        val_set=val_set,
        facts=facts,
        weights_meta=weights_metadata(config, info, model_kwargs, input_size),
        fast=fast,
        run_dir=run_dir,
        resume_path=resume_path,
        resume_point=resume_point,
        notes=notes,
    )


def _facts(
    config: Config,
    world: World,
    model_kwargs: dict[str, Any],
    data: tuple[Any, Any, Any],
    input_size: tuple[int, ...],
    cost: dict[str, Any],
) -> dict[str, Any]:
    """What the summary says about the run's setup."""
    train_set, val_set, info = data
    return dict(
        model=config.model.name,
        model_kwargs=model_kwargs,
        data=info.name,
        train_images=len(train_set),
        val_images=len(val_set),
        input_size=list(input_size),
        **cost,
        global_batch=config.data.batch_size * world.world_size,
        world_size=world.world_size,
    )


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


def _check_device_settings(config: Config, world: World) -> None:
    """Refuse explicit settings the device cannot run (before anything is built)."""
    t = config.train
    try:  # the config allows fp16 with device=auto; here auto has become a device
        check_amp(t.amp if t.amp != "auto" else "none", world.device)
    except ValueError as e:
        raise ConfigError(f"train.amp: {e}") from None
    if t.sync_bn and world.distributed and world.device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on GPUs only); on CPU "
            "set train.sync_bn=false: each process then normalises with its own batch"
        )


def _settle_fast_path(
    config: Config, world: World, resume_state: dict[str, Any] | None, workload: Workload
) -> FastPath:
    """Settle ``auto`` amp/channels_last/compile in place (before the config is saved, so it
    holds what ran): the checkpoint's choice on resume, else timed by rank 0 for all ranks."""
    t = config.train
    check_explicit(t, len(residual_stages(workload.model)))
    fast = recorded_fast_path(t, resume_state) if resume_state is not None else None
    if fast is None:
        fast = world.main_result(lambda: settle_fast_path(t, [workload]))
    fast.apply(t)
    return fast


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
