"""Timing a run's real training step in each candidate mode, within a budget the run sets.

Each candidate trains a deep copy of the run's model with its own optimiser (the run's
settings: SGD or AdamW, EMA, clipping, label smoothing) on random images of the run's batch and
input size, through the same ``Trainer.train_batch`` the run uses. The run's model, optimiser
and random state are never touched. What was timed is kept in the speed cache under the
workload's key, so the next run with the same model, batch and machine reads it instead.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from senet.config import Config
from senet.models.compiling import compile_in_place, residual_stages
from senet.models.precision import Mode, device_name
from senet.models.race import Candidate, Clock, RaceResult, StepFn, race
from senet.models.speed_cache import SpeedCache
from senet.train.ema import create_ema
from senet.train.epoch import Trainer
from senet.train.optim import create_optimizer

EAGER_SHARE = 0.02  # eager measuring takes at most this share of the run's planned steps
MAX_TIMED_STEPS = 6  # timed rounds per candidate, when the run affords them
MIN_TIMED_STEPS = 2  # fewer affordable: the run is too short to measure
COMPILED_TIMED_STEPS = 3  # timed rounds of a compiled candidate (after its compiling step)
PROBE_FRACTION = 8  # a candidate's probe step runs 1/8 of the batch (the drop rule, cheaply)


@dataclass
class Workload:
    """One model's training step as a run takes it, and how many steps the run plans."""

    model: nn.Module  # as built: fp32, NCHW, on the CPU; only copies of it are trained
    config: Config  # the run's settings (optimiser, EMA, clipping, batch)
    input_size: tuple[int, ...]  # one image (C, H, W)
    num_classes: int
    device: torch.device
    steps: int  # training steps planned with this model (a grid: summed over its points)
    eval_graphs: int = 1  # eval batch shapes a compiled run meets (full, last partial)
    key: dict[str, Any] = field(default_factory=dict)  # what its speed depends on (cache key)

    @property
    def label(self) -> str:
        return str(self.key.get("model", self.config.model.name))


def unique_labels(workloads: list[Workload]) -> list[str]:
    """Each workload's model name, with its arguments where two share a name (a grid's axis
    over an attention argument)."""
    names = [w.label for w in workloads]
    return [
        name if names.count(name) == 1 else f"{name} {json.dumps(w.key.get('model_kwargs'))}"
        for name, w in zip(names, workloads, strict=True)
    ]


def workload_key(
    config: Config,
    model_kwargs: dict[str, Any],
    input_size: tuple[int, ...],
    device: torch.device,
    world_size: int,
) -> dict[str, Any]:
    """Everything a training step's speed depends on: the speed cache's key."""
    t, o = config.train, config.optim
    return {
        "what": "training step",
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "world_size": world_size,
        "model": config.model.name,
        "model_kwargs": model_kwargs,
        "batch": config.data.batch_size,
        "input_size": list(input_size),
        "optimizer": o.name,
        "ema": t.ema,
        "grad_clip": o.grad_clip is not None,
        "deterministic": t.deterministic,
    }


def eager_timed_steps(steps: int, candidates: int) -> int:
    """Timed rounds a run of ``steps`` affords: every candidate's probe, first and timed steps
    stay within ``EAGER_SHARE`` of the run; 0 when that leaves under ``MIN_TIMED_STEPS``."""
    each = min(int(EAGER_SHARE * steps / max(candidates, 1)) - 2, MAX_TIMED_STEPS)
    return each if each >= MIN_TIMED_STEPS else 0


@dataclass
class Measured:
    """One workload's race (None: too short to measure) and where it came from."""

    race: RaceResult | None
    source: str  # "measured", "cached" or "too short"
    note: str = ""  # e.g. why the cache could not be written


def measure_eager(
    w: Workload, modes: list[Mode], cache: SpeedCache, clock: Clock, timed_steps: int
) -> Measured:
    """The eager candidates' race on ``w``: from the cache when it holds every mode with at
    least the steps this run affords, else timed now (``timed_steps`` rounds) and stored."""
    labels = [m.label for m in modes]
    entry = cache.load(w.key) or {}
    eager = entry.get("eager") or {}
    cached = RaceResult.from_list(eager.get("timings") or [])
    enough = min(timed_steps, MAX_TIMED_STEPS) if timed_steps else 0
    if all(cached.get(name) for name in labels) and eager.get("timed_steps", 0) >= enough:
        return Measured(RaceResult([cached.get(name) for name in labels]), "cached")
    if not timed_steps:
        return Measured(None, "too short")
    copy.deepcopy(w.model)  # a model that cannot be copied fails the measuring, not a mode
    result = race([step_candidate(w, m) for m in modes], timed_steps=timed_steps, clock=clock)
    entry["eager"] = {"timed_steps": timed_steps, "timings": result.to_list()}
    entry.pop("compiled", None)  # measured against other eager figures: measure again
    return Measured(result, "measured", cache.store(w.key, entry) or "")


def cached_compiled(w: Workload, base: Mode, cache: SpeedCache) -> RaceResult | None:
    """The compiled variants of ``base`` on ``w`` as the cache holds them, or None."""
    rows = ((cache.load(w.key) or {}).get("compiled") or {}).get(base.label)
    return RaceResult.from_list(rows) if rows else None


def measure_compiled(w: Workload, base: Mode, cache: SpeedCache, clock: Clock) -> RaceResult:
    """Time ``base`` compiled whole and per residual stage on ``w``, and cache it."""
    variants = ["model", *(["stages"] if residual_stages(w.model) else [])]
    modes = [replace(base, compile=how) for how in variants]
    candidates = [step_candidate(w, mode, probe=False) for mode in modes]
    # A compiling first step takes far longer than any later one: no drop rule here.
    result = race(candidates, timed_steps=COMPILED_TIMED_STEPS, clock=clock, drop_ratio=1e9)
    entry = cache.load(w.key) or {}
    entry.setdefault("compiled", {})[base.label] = result.to_list()
    cache.store(w.key, entry)
    return result


def step_candidate(w: Workload, mode: Mode, *, probe: bool = True) -> Candidate:
    """``mode``'s training step on a copy of ``w``'s model, as a race candidate."""
    probe = probe and w.config.data.batch_size >= 2 * PROBE_FRACTION
    return Candidate(mode.label, partial(build_step, w, mode), probe=probe)


def build_step(w: Workload, mode: Mode) -> StepFn:
    """A copy of the model in ``mode`` with its own optimiser, and one training step of it."""
    t, device = w.config.train, w.device
    model = copy.deepcopy(w.model).to(device)
    if mode.channels_last:
        model.to(memory_format=torch.channels_last)
    trainer = Trainer(
        model=model,
        optimizer=create_optimizer(model, w.config.optim, w.config.optim.lr),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=t.label_smoothing),
        device=device,
        scaler=torch.amp.GradScaler(device.type, enabled=mode.amp == "fp16"),
        amp=mode.amp,
        channels_last=mode.channels_last,
        grad_clip=w.config.optim.grad_clip,
        ema=create_ema(model, t.ema_decay) if t.ema else None,
    )
    compile_in_place(model, mode.compile)
    batch = w.config.data.batch_size
    # Random images from a generator of its own: the run's random streams stay where they are.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *w.input_size, generator=generator)
    y = torch.randint(0, w.num_classes, (batch,), generator=generator)
    x, y = trainer.to_device(x, y)
    part = max(2, batch // PROBE_FRACTION)

    def step(probe: bool) -> None:
        trainer.train_batch(x[:part], y[:part]) if probe else trainer.train_batch(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step
