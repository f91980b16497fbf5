"""``RunSummary``: what one training run did and reached (``summary.json`` in the run folder)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunSummary:
    """One finished run. Accuracies are percentages on the validation split; ``macs`` are
    multiply-adds per image at ``input_size`` in senet.profile's convention."""

    model: str  # the model name (senet name, torchvision:NAME, timm:NAME)
    model_kwargs: dict[str, Any]  # the builder's keyword arguments (rebuilds the model)
    data: str
    train_images: int
    val_images: int
    input_size: list[int]  # one image's (C, H, W)
    params: int
    macs: int
    macs_convention: str
    global_batch: int
    world_size: int
    lr: float  # the peak LR after linear scaling
    epochs: int
    best_epoch: int | None
    best_top1: float | None
    best_top5: float | None
    final_top1: float | None  # after the last epoch
    final_top5: float | None
    final_loss: float | None
    final_ema_top1: float | None  # the EMA weights' top-1 (train.ema); None without EMA
    final_flip_top1: float | None  # with flip test-time augmentation (train.eval_flip); or None
    skipped_batches: int  # batches skipped for a non-finite loss (train.skip_nonfinite)
    train_seconds: float
    train_img_s: float | None  # mean training throughput over the epochs
    wall_seconds: float  # the whole job, building and checking included
    device: str
    threads: int
    torch: str
    host: str
    pid: int
    commit: str | None  # the git commit senet ran from; None outside a git checkout
    commit_dirty: bool | None  # that checkout had uncommitted changes to tracked files
    cpu: str | None  # the CPU's model name (/proc/cpuinfo); None where unknown
    # How train.amp/channels_last/compile were settled: the mode, its source (as set, measured,
    # cached, checkpoint, grid, ...), why, and each candidate's timings (senet.train.fast_path)
    fast_path: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the resolved Config as a dict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """From ``summary.json``; a field an older version did not write is None."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: data.get(name) for name in names})

    @classmethod
    def read(cls, run_dir: str | Path) -> RunSummary:
        """The summary of the finished run in ``run_dir`` (FileNotFoundError if unfinished)."""
        return cls.from_dict(json.loads((Path(run_dir) / "summary.json").read_text()))

    def write(self, run_dir: str | Path) -> None:
        (Path(run_dir) / "summary.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    # senet 0.1 returned a dict: ``summary["final_top1"]`` keeps working for its callers.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default
