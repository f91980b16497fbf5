"""``train(config)``: build data, model, optimiser from a Config, check them, then ``fit``.

Every check that can fail (config, output folder, data, model/data agreement) runs before the
first training step, so a mistake costs seconds, not an epoch.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from senet.config import Config, ConfigError, ModelConfig, TrainConfig, save_config
from senet.data import DatasetInfo, create_dataset, create_loader
from senet.models.builder import (
    is_foreign,
    is_run_weights,
    load_initial_weights,
    model_from_config,
)
from senet.models.precision import choose_amp
from senet.profile import profile
from senet.profile.timing import eval_mode
from senet.train.checkpoint import CheckpointDir, restore_training_state
from senet.train.distributed import World, init_world, wrap_ddp
from senet.train.ema import create_ema
from senet.train.epoch import EpochTotals, check_amp
from senet.train.fit_loop import fit
from senet.train.optim import create_optimizer, create_scheduler, scaled_lr
from senet.train.progress import MutedProgress, create_progress
from senet.train.resume import (
    RESUMABLE_CHANGES,
    checkpoint_folder,
    config_differences,
    find_resume_state,
)
from senet.train.run_log import RunLog
from senet.train.seed import seed_everything
from senet.train.summary import RunSummary

__all__ = [
    "RESUMABLE_CHANGES",
    "check_model_fits_data",
    "config_differences",
    "model_cost",
    "prepare_run_dir",
    "train",
]


def prepare_run_dir(output_dir: str | None, config: Config) -> Path:
    """Create the run folder (default ``runs/<model>-<data>-<time>``) and prove it is writable."""
    if output_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = f"runs/{config.model.name}-{config.data.name}-{stamp}"
    folder = Path(output_dir)
    probe = folder / ".senet-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"output folder {folder} is not writable ({e.strerror}); choose another with "
            "output_dir=PATH"
        ) from None
    return folder


def check_model_fits_data(
    model: nn.Module, sample: torch.Tensor, info: DatasetInfo, model_name: str
) -> None:
    """One forward pass on real images; fail clearly if channels or class counts disagree."""
    try:
        with eval_mode(model), torch.no_grad():  # every submodule's own mode comes back
            out = model(sample)
    except (RuntimeError, ValueError) as e:  # ValueError: a model's own input check
        raise ConfigError(
            f"model {model_name} cannot take the {info.name} images of shape "
            f"{tuple(sample.shape[1:])} ({str(e).splitlines()[0]}); check model.in_chans "
            f"(data has {info.in_chans} channels) and data.image_size"
        ) from None
    if out.dim() != 2 or out.shape[1] != info.num_classes:
        raise ConfigError(
            f"model {model_name} outputs {tuple(out.shape[1:])} logits per image but {info.name} "
            f"has {info.num_classes} classes; set model.num_classes={info.num_classes} (or leave "
            "it null to follow the data)"
        )


def model_cost(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, Any]:
    """Params and multiply-adds at ``input_size`` in the paper's convention (senet.profile)."""
    report = profile(model, input_size=input_size)
    return {
        "params": int(report.params),
        "macs": int(report.macs),
        "macs_convention": "senet.profile",
    }


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
        return _train(config, resume, world, wall_start)
    finally:
        world.close()


def build_data(
    config: Config, world: World
) -> tuple[Dataset, Dataset, DatasetInfo, DataLoader, DataLoader]:
    """Train and val datasets of ``config.data`` and their loaders, sharded over ``world``."""
    t, d, device = config.train, config.data, world.device
    common = dict(
        root=d.root,
        download=d.download,
        image_size=d.image_size,
        mean=d.mean,
        std=d.std,
        num_classes=d.num_classes,
        channels=d.channels,
        seed=t.seed,
        distort=d.distort,
        distort_canvas=d.distort_canvas,
    )
    with world.main_first():  # rank 0 unpacks or downloads; the others then read
        train_set, info = create_dataset(
            d.name,
            "train",
            size=d.train_size,
            synthetic_size=d.synthetic_train,
            augment=d.augment,
            cutout=d.cutout,
            **common,
        )
        val_set, _ = create_dataset(
            d.name,
            "val",
            size=d.val_size,
            synthetic_size=d.synthetic_val,
            eval_resize=d.eval_resize,
            **common,
        )
    shard = dict(num_replicas=world.world_size, rank=world.rank)
    train_loader = create_loader(
        train_set,
        batch_size=d.batch_size,
        train=True,
        device=device,
        workers=d.workers,
        seed=t.seed,
        **shard,
    )
    val_loader = create_loader(
        val_set,
        batch_size=d.eval_batch_size or 2 * d.batch_size,
        train=False,
        device=device,
        workers=d.workers,
        **shard,
    )
    return train_set, val_set, info, train_loader, val_loader


def model_for_data(
    m: ModelConfig, info: DatasetInfo, val_set: Dataset
) -> tuple[nn.Module, dict[str, Any], tuple[int, int, int], dict[str, Any]]:
    """The model of ``m`` fitted to the data: checked on two images, with its cost counted.

    Returns the model, the keyword arguments it was built with, one image's (C, H, W) and
    ``model_cost`` at that size.
    """
    if m.num_classes is not None and m.num_classes != info.num_classes:
        raise ConfigError(
            f"model.num_classes={m.num_classes} but {info.name} has {info.num_classes} classes; "
            f"set model.num_classes={info.num_classes} or null"
        )
    if m.in_chans is not None and m.in_chans != info.in_chans:
        raise ConfigError(
            f"model.in_chans={m.in_chans} but {info.name} images have {info.in_chans} channels; "
            f"set model.in_chans={info.in_chans} or null"
        )
    # Base weights (not a senet run's file, which holds the attention too) load before retrofit.
    weights_first = bool(m.weights and (m.retrofit or m.stn) and not is_run_weights(m.weights))
    model, model_kwargs = model_from_config(
        m,
        num_classes=info.num_classes,
        in_chans=info.in_chans,
        base_weights=m.weights if weights_first else None,
    )
    if m.weights and not weights_first:
        load_initial_weights(model, m.weights, foreign=is_foreign(m.name), head=m.weights_head)
    sample = torch.stack([val_set[i][0] for i in range(min(2, len(val_set)))])
    check_model_fits_data(model, sample, info, m.name)
    input_size = (info.in_chans, *sample.shape[-2:])
    cost = model_cost(model, input_size)
    return model, model_kwargs, input_size, cost


def restore_run(state: dict[str, Any], path: Path | None, **parts: Any) -> None:
    """Load a checkpoint's model, optimiser, scheduler, scaler and EMA states into ``parts``."""
    try:
        restore_training_state(state, **parts)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"cannot resume from {path}: its state does not fit this model and "
            f"optimiser ({str(e).splitlines()[0]})"
        ) from None


def own_rng_state(
    state: dict[str, Any], world: World, *, resumes_mid_epoch: bool, notes: list[str]
) -> Any:
    """This rank's saved RNG state, or None (with a note) when the world size changed."""
    rngs = state["rng"]
    if len(rngs) == world.world_size:
        return rngs[world.rank]
    if resumes_mid_epoch:
        notes.append(
            f"the checkpoint was written by {len(rngs)} processes, this run has "
            f"{world.world_size}: data order and augmentation resume exactly, the model's "
            "own random draws (dropout) restart from the epoch seed"
        )
    return None


def weights_metadata(
    config: Config, info: DatasetInfo, model_kwargs: dict[str, Any], input_size: tuple[int, ...]
) -> dict[str, Any]:
    """What travels with saved weights: enough to rebuild the model and its preprocessing."""
    d = config.data
    return {
        "model": config.model.name,
        "model_kwargs": model_kwargs,
        "data": info.name,
        "classes": info.classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "input_size": list(input_size),
        # Enough to rebuild the same dataset for `senet evaluate` (synthetic data needs all).
        "data_args": {
            "num_classes": d.num_classes,
            "channels": d.channels,
            "seed": config.train.seed,
            "image_size": d.image_size,
            "eval_resize": d.eval_resize,
            "distort": d.distort,
            "distort_canvas": d.distort_canvas,
        },
    }


def resolve_precision(t: TrainConfig, device: torch.device) -> str:
    """Turn ``train.amp``/``train.channels_last`` ``auto`` into what runs on ``device``, in place;
    returns the line the run log shows (the resolved values are saved with the config)."""
    t.amp, why = choose_amp(t.amp, device)
    if t.channels_last == "auto":  # NHWC pays with reduced-precision convs (oneDNN, tensor cores)
        t.channels_last = t.amp != "none"
    precision = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[t.amp]
    layout = "channels_last" if t.channels_last else "NCHW"
    return f"precision: {precision}, {layout} ({why})"


def _train(
    config: Config, resume: str | Path | None, world: World, wall_start: float
) -> RunSummary:
    t, d = config.train, config.data
    device = world.device
    # Before the resume check and the saved config: both then hold the precision that ran.
    precision_note = resolve_precision(t, device)
    try:  # the config allows fp16 with device=auto; here auto has become a device
        check_amp(t.amp, device)
    except ValueError as e:
        raise ConfigError(f"train.amp: {e}") from None
    if t.sync_bn and world.distributed and device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on GPUs only); on CPU "
            "set train.sync_bn=false: each process then normalises with its own batch"
        )
    global_batch = d.batch_size * world.world_size
    notes: list[str] = [precision_note]  # said once the progress display exists

    def prepare() -> tuple[Path | None, dict[str, Any] | None, list[str]]:
        found = None
        if resume is not None:
            found = find_resume_state(
                resume, config, world_size=world.world_size, report=notes.append
            )
        path, state = found if found is not None else (None, None)
        return path, state, notes

    # Rank 0 reads the checkpoint; every rank gets the outcome (or the error).
    resume_path, resume_state, notes = world.main_result(prepare)
    seed_everything(t.seed, deterministic=t.deterministic)
    if device.type == "cuda" and not t.deterministic:
        torch.backends.cudnn.benchmark = True

    # Data first: a missing dataset is the commonest mistake, and the model needs its shape.
    train_set, val_set, info, train_loader, val_loader = build_data(config, world)
    m = config.model
    model, model_kwargs, input_size, cost = model_for_data(m, info, val_set)
    # The run folder is made only now: a config that cannot build its model wrote nothing.
    run_dir = world.main_result(lambda: prepare_run_dir(config.output_dir, config))

    if t.sync_bn and world.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state_dict keys
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = create_ema(model, t.ema_decay) if t.ema else None

    lr = scaled_lr(config.optim.lr, global_batch, config.optim.lr_base_batch)
    optimizer = create_optimizer(model, config.optim, lr)
    scheduler = create_scheduler(
        optimizer, config.schedule, epochs=t.epochs, steps_per_epoch=len(train_loader)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    start_epoch, best, history = 0, None, []
    start, rng = EpochTotals(), None
    if resume_state is not None:
        restore_run(
            resume_state,
            resume_path,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            ema=ema,
        )
        start_epoch, best = resume_state["epoch"], resume_state["best"]
        history = resume_state["history"]
        start = EpochTotals(**resume_state.get("totals", {}))
        rng = own_rng_state(resume_state, world, resumes_mid_epoch=bool(start.step), notes=notes)
    if t.compile:
        # In place (state_dict keys stay the same). Static shapes: a last partial batch or the
        # eval batch costs a recompile, not slower symbolic kernels (and some backward
        # formulas, e.g. affine_grid's for an STN, have no symbolic-shape version).
        model.compile(dynamic=False)
    train_model = wrap_ddp(model, world)

    progress = (
        create_progress(config.log.progress, log_every=config.log.log_every)
        if world.is_main
        else MutedProgress()
    )
    run_log = None
    if world.is_main:
        save_config(config, run_dir / "config.yaml")
        run_log = RunLog(
            run_dir, tensorboard=config.log.tensorboard, rows=history, notice=progress.log
        )
    for note in notes:
        progress.log(note)
    steps = len(train_loader)
    if resume_state is not None:
        progress.log(
            f"resuming from {resume_path}: epoch {start_epoch + 1}, step {start.step}/{steps} "
            f"(global step {start_epoch * steps + start.step})"
        )
    procs = f" ({d.batch_size} x {world.world_size} processes)" if world.distributed else ""
    progress.log(
        f"training {m.name}{' + ' + m.retrofit.attn if m.retrofit else ''} "
        f"({cost['params']:,} params, {cost['macs'] / 1e6:,.1f} M MACs) on "
        f"{info.name}: {len(train_set):,} train / {len(val_set):,} val images, "
        f"{t.epochs} epochs x {steps} steps, batch {global_batch}{procs}, lr {lr:.4g}, "
        f"{device}{', ' + t.amp if t.amp != 'none' else ''} -> {run_dir}"
    )
    weights_meta = weights_metadata(config, info, model_kwargs, input_size)
    checkpoints = (
        CheckpointDir(checkpoint_folder(run_dir), keep=t.keep_checkpoints)
        if world.is_main
        else None
    )
    try:
        result = fit(
            train_model,
            train_loader,
            val_loader,
            config=config,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            loss_fn=loss_fn,
            device=device,
            ema=ema,
            run_dir=run_dir if world.is_main else None,
            run_log=run_log,
            progress=progress,
            weights_meta=weights_meta,
            start_epoch=start_epoch,
            best=best,
            world=world,
            start=start,
            rng=rng,
            checkpoints=checkpoints,
            extra_state={"world_size": world.world_size, "global_batch": global_batch},
            history=history,
        )
    finally:
        if run_log is not None:
            run_log.close()
    history = result.pop("history")
    summary = RunSummary(
        model=m.name,
        model_kwargs=model_kwargs,
        data=info.name,
        train_images=len(train_set),
        val_images=len(val_set),
        input_size=list(input_size),
        **cost,
        global_batch=global_batch,
        world_size=world.world_size,
        lr=lr,
        **result,
        wall_seconds=time.perf_counter() - wall_start,
        device=str(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        host=platform.node(),
        pid=os.getpid(),
        config=asdict(config),
    )
    if run_log is not None:
        summary.write(run_dir)
        if config.log.plots:
            run_log.rows = history
            run_log.plot(title=f"{m.name} on {info.name}")
        if m.stn:  # what the STN learned: inputs beside its rectified outputs
            from senet.train.stn_plot import save_rectified

            save_rectified(model, val_set, run_dir / "stn_rectified.png", notice=progress.log)
    progress.log(
        f"done in {summary.wall_seconds:.0f} s: best val top-1 {summary.best_top1:.2f}% "
        f"(epoch {summary.best_epoch}), final {summary.final_top1:.2f}% -> {run_dir}"
    )
    return summary
