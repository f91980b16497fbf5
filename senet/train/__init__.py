"""Training with the paper's recipe: the step and the epoch (``epoch``: ``Trainer``,
``train_one_epoch``), the loop over epochs (``fit_loop.fit``), what a job builds first
(``setup``), the job (``job.train``), checkpoints and resuming, distributed, logs, ``RunSummary``.
The config dataclasses live in ``senet.config``."""

from __future__ import annotations

import warnings
from typing import Any

from senet.config import (
    Config,
    ConfigError,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    parse_overrides,
    save_config,
    valid_keys,
)
from senet.models.weights import CheckpointError, atomic_write, read_weights, save_weights
from senet.train.batchnorm import batchnorm_modules, drop_batchnorm_grads, freeze_batchnorm
from senet.train.checkpoint import (
    CheckpointDir,
    load_checkpoint,
    restore_training_state,
    training_state,
)
from senet.train.distributed import World, init_world
from senet.train.ema import create_ema
from senet.train.epoch import (
    EpochMeter,
    EpochTotals,
    NonFiniteLossError,
    Trainer,
    evaluate_loader,
    topk_correct,
    train_one_epoch,
    train_step,
)
from senet.train.fit_loop import RunOutput, fit
from senet.train.job import train
from senet.train.optim import (
    LRSchedule,
    create_optimizer,
    create_scheduler,
    param_groups,
    scaled_lr,
)
from senet.train.resume import ResumePoint, find_resume_state
from senet.train.run_lock import RunFolderBusy, RunFolderLock
from senet.train.seed import rng_state, seed_everything, set_rng_state
from senet.train.stop_signal import StopSignal, TrainingStopped
from senet.train.summary import RunSummary

__all__ = [
    "CheckpointDir",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DataConfig",
    "EpochMeter",
    "EpochTotals",
    "LRSchedule",
    "LogConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "ResumePoint",
    "RunFolderBusy",
    "RunFolderLock",
    "RunOutput",
    "RunSummary",
    "ScheduleConfig",
    "StopSignal",
    "TrainConfig",
    "Trainer",
    "TrainingStopped",
    "World",
    "atomic_write",
    "batchnorm_modules",
    "config_from_dict",
    "create_ema",
    "create_optimizer",
    "create_scheduler",
    "drop_batchnorm_grads",
    "evaluate_loader",
    "find_resume_state",
    "fit",
    "freeze_batchnorm",
    "init_world",
    "load_checkpoint",
    "load_config",
    "param_groups",
    "parse_overrides",
    "read_weights",
    "restore_training_state",
    "rng_state",
    "save_config",
    "save_weights",
    "scaled_lr",
    "seed_everything",
    "set_rng_state",
    "topk_correct",
    "train",
    "train_one_epoch",
    "train_step",
    "training_state",
    "valid_keys",
]


def __getattr__(name: str) -> Any:
    # Renamed in 0.2.0 (CHANGELOG.md); the old name works, with a warning, until 0.3.0.
    if name == "evaluate":
        warnings.warn(
            "senet.train.evaluate is renamed senet.train.evaluate_loader; the old name goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return evaluate_loader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
