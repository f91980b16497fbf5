"""Resuming a run: find the checkpoint (``auto``: the newest that verifies), check it fits.

A checkpoint fits when the config computes the same thing (only where and how the run logs
and loads may change) and the global batch is the same. The per-process batch and the number
of processes may change together: an epoch's batches hold the same images either way (see
``senet.data.sampler``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.config import Config, ConfigError, config_from_dict
from senet.train.checkpoint import CheckpointDir, load_checkpoint
from senet.train.distributed import World
from senet.train.epoch import EpochTotals

# Keys that may change when a run is resumed: where and how it logs, loads and checkpoints,
# and what to do on a non-finite loss; not what it computes.
RESUMABLE_CHANGES = (
    "output_dir",
    "log.",
    "data.root",
    "data.download",
    "data.workers",
    "data.eval_batch_size",
    "data.on_bad_image",
    "train.device",
    "train.compile",
    "train.eval_flip",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.skip_nonfinite",
)
# ``train`` settings a run settles before it saves its config (senet.train.fast_path).
AUTO_SETTLED = ("amp", "channels_last", "compile")


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, as ``key: old -> new``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("attn_kwargs", "kwargs"):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _as_now(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config as this version writes it (0.1's ``retrofit: {}`` is now null)."""
    try:
        return config_from_dict(copy.deepcopy(saved)).to_dict()
    except ConfigError:  # compared as it is: the differences name what no longer fits
        return saved


def computation_differences(saved: dict[str, Any], config: Config) -> list[str]:
    """What ``config`` would compute differently from the run that saved ``saved`` (its config
    dict, from a checkpoint or a summary), as ``key: old -> new``. A ``train`` setting left
    ``auto`` fits what the run settled it to (a resumed run keeps that choice)."""
    old, now = _as_now(saved), config.to_dict()
    for key in AUTO_SETTLED:
        if now["train"][key] == "auto" and key in old.get("train", {}):
            now["train"][key] = old["train"][key]
    return [diff for diff in config_differences(old, now) if not diff.startswith(RESUMABLE_CHANGES)]


def checkpoint_folder(run_dir: str | Path) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(run_dir) / "checkpoints"


def find_resume_state(
    resume: str | Path,
    config: Config,
    *,
    world_size: int = 1,
    report: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint ``resume`` names and its state, checked against ``config``.

    ``resume``: ``"auto"`` (the newest valid checkpoint of ``config.output_dir``; None when the
    run has none yet, so a job script can always pass it), a run folder (the same, for that
    folder), or a checkpoint file. A corrupt newest checkpoint is reported and the previous one
    used (auto and folders); an explicit file must load.
    """
    auto = str(resume) == "auto"
    if auto and config.output_dir is None:
        raise ConfigError(
            "--resume auto continues the run in output_dir, but output_dir is not set; "
            "add output_dir=PATH (the run folder to continue)"
        )
    folder = Path(config.output_dir) if auto else Path(resume)  # type: ignore[arg-type]
    if auto or folder.is_dir():
        ckpt_dir = folder if folder.name == "checkpoints" else checkpoint_folder(folder)
        found = CheckpointDir(ckpt_dir).newest_valid(report=report)
        if found is None:
            if not auto:
                raise ConfigError(f"cannot resume: no valid checkpoint in {ckpt_dir}")
            report(f"no checkpoint in {ckpt_dir} yet: starting the run from the beginning")
            return None
        path, state = found
    else:
        path = folder
        try:
            state = load_checkpoint(path)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"cannot resume: {e}") from None
    check_resumable(state, config, world_size=world_size, source=path)
    return path, state


def check_resumable(
    state: dict[str, Any], config: Config, *, world_size: int, source: str | Path
) -> None:
    """Raise a ConfigError naming every difference that makes ``state`` unfit for ``config``."""
    changed = computation_differences(state["config"], config)
    old_batch = state.get("global_batch")
    new_batch = config.data.batch_size * world_size
    if old_batch == new_batch:
        changed = [d for d in changed if not d.startswith("data.batch_size:")]
    elif old_batch is not None:
        old_world = state.get("world_size", 1)
        changed.append(
            f"global batch: {old_batch} ({old_batch // old_world} x {old_world} processes) -> "
            f"{new_batch} ({config.data.batch_size} x {world_size})"
        )
    if changed:
        raise ConfigError(
            f"cannot resume from {source}: the config differs in what the run computes: "
            + "; ".join(changed)
            + ". Resume with the checkpoint's settings, or start a new run (another output_dir)"
        )


@dataclass
class ResumePoint:
    """Where a run continues: the epochs done, their rows and best, and mid-epoch the totals
    of the steps done and this rank's random state at that point (None: a fresh start)."""

    epoch: int = 0
    best: dict[str, float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    totals: EpochTotals = field(default_factory=EpochTotals)
    rng: Any = None

    @classmethod
    def from_state(cls, state: dict[str, Any], world: World, notes: list[str]) -> ResumePoint:
        """The point a checkpoint's ``state`` holds, for this rank of ``world``."""
        totals = EpochTotals(**state.get("totals", {}))
        rngs = state["rng"]
        rng = rngs[world.rank] if len(rngs) == world.world_size else None
        if rng is None and totals.step:
            notes.append(
                f"the checkpoint was written by {len(rngs)} processes, this run has "
                f"{world.world_size}: data order and augmentation resume exactly, the model's "
                "own random draws (dropout) restart from the epoch seed"
            )
        return cls(state["epoch"], state["best"], state["history"], totals, rng)
