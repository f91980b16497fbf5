"""``optimize_for_inference(dtype="auto")``: the dtype that runs this model fastest on this
device at the example's batch size, timed (``senet.models.race``), never read from CPU flags."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from senet.models.precision import device_name, reduced_precisions
from senet.models.race import Candidate, NoCandidateRan, RaceResult, StepFn, race, timing_table
from senet.models.speed_cache import SpeedCache

TIMED_CALLS = 5  # interleaved timed rounds per dtype (after a probe and a first call)
_BY_NAME = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Builds the prepared model in a dtype: what the caller will return, so what is timed.
Prepare = Callable[[torch.dtype], Callable[[torch.Tensor], Any]]


@dataclass
class DtypeChoice:
    """The dtype to run in and the record of how it was chosen (``InferenceModel.fast_path``)."""

    dtype: torch.dtype
    record: dict[str, Any]


def as_set(name: str) -> DtypeChoice:
    return DtypeChoice(_BY_NAME[name], {"dtype": name, "source": "as set"})


def choose_dtype(
    model: nn.Module, x: torch.Tensor, prepare: Prepare, *, variant: dict[str, Any]
) -> DtypeChoice:
    """Time fp32 and each reduced precision the device offers on batch ``x``; the fastest.

    ``model`` (as folded, before conversion) and ``variant`` (layout, CUDA graph) name the
    workload for the speed cache. Every
    dtype failing raises RuntimeError naming each; the measuring itself failing falls back to
    fp32 with a warning that says so.
    """
    names = ["fp32", *reduced_precisions(x.device)]
    if len(names) == 1:
        reason = f"{device_name(x.device)} reports no reduced precision: fp32 is the only candidate"
        return DtypeChoice(
            torch.float32, {"dtype": "fp32", "source": "only candidate", "reason": reason}
        )
    cache = SpeedCache()
    key = {**_key(model, x), **variant}
    entry = cache.load(key) or {}
    source = "cached" if entry.get("timings") else "measured"
    try:
        if entry.get("timings"):
            result = RaceResult.from_list(entry["timings"])
        else:
            candidates = [_candidate(prepare, name, x) for name in names]
            result = race(candidates, timed_steps=TIMED_CALLS)
            cache.store(key, {"timings": result.to_list()})
    except NoCandidateRan as e:
        raise RuntimeError(f"optimize_for_inference: {e}") from None
    except Exception as e:  # measuring failed, not a dtype: fp32 runs anywhere
        note = f"timing the dtypes failed ({type(e).__name__}: {e}); using fp32"
        warnings.warn(f"optimize_for_inference: {note}", stacklevel=3)
        return DtypeChoice(torch.float32, {"dtype": "fp32", "source": "fallback", "reason": note})
    best = result.best()
    assert best is not None  # race raised when none ran
    record = {
        "dtype": best.name,
        "source": source,
        "batch": int(x.shape[0]),
        "timings": result.to_list(),
        "table": timing_table(result.timings),
    }
    return DtypeChoice(_BY_NAME[best.name], record)


def _candidate(prepare: Prepare, name: str, x: torch.Tensor) -> Candidate:
    def build() -> StepFn:
        run = prepare(_BY_NAME[name])
        part = x[: max(1, x.shape[0] // 8)]

        def step(probe: bool) -> None:
            with torch.inference_mode():
                run(part if probe else x)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)

        return step

    return Candidate(name, build, probe=x.shape[0] >= 16)


def _key(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """What an inference call's speed depends on: machine, model architecture, input batch."""
    return {
        "what": "inference",
        "device": device_name(x.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": type(model).__qualname__,
        "architecture": hashlib.sha256(repr(model).encode()).hexdigest()[:16],
        "params": sum(p.numel() for p in model.parameters()),
        "input": list(x.shape),
    }
