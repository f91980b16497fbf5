"""The execution modes a device offers (dtype, memory layout, compilation) and what its hardware
reports. Which mode is fastest is measured (``senet.models.race``), never read from CPU flags:
the same ``avx512_bf16`` flag means bf16 is 1.9x faster than fp32 on one CPU and 0.9x on
another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Amp = Literal["none", "bf16", "fp16"]
# How a model is compiled: not at all, as a whole, or each residual stage on its own.
CompileHow = Literal["none", "model", "stages"]

_AMP_NAMES = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}


@dataclass(frozen=True)
class Mode:
    """One way to run a model: autocast dtype (``none``: fp32), layout, compilation."""

    amp: Amp = "none"
    channels_last: bool = False
    compile: CompileHow = "none"

    @property
    def label(self) -> str:
        """``fp32 NCHW``, ``bf16 channels_last``, ``bf16 channels_last, compiled per stage``."""
        text = f"{_AMP_NAMES[self.amp]} {'channels_last' if self.channels_last else 'NCHW'}"
        if self.compile != "none":
            text += ", compiled" + (" per stage" if self.compile == "stages" else "")
        return text

    @property
    def dtype(self) -> torch.dtype:
        return {"none": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]


def reduced_precisions(device: torch.device | str) -> list[Amp]:
    """The autocast dtypes worth timing on ``device``: bf16 on CPUs that report bf16 hardware;
    bf16 (where supported) and fp16 on CUDA. fp16 on CPU is emulated (one SE-ResNet-20 step
    took 40 s on a Xeon) and torch refuses its grad scaler there, so it is never a candidate."""
    device = torch.device(device)
    if device.type == "cuda":
        return [*(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]
    return ["bf16"] if device.type == "cpu" and cpu_has_fast_bf16() else []


def candidate_modes(
    device: torch.device | str, amp: str = "auto", channels_last: bool | str = "auto"
) -> list[Mode]:
    """The eager modes ``auto`` times on ``device``, fp32 NCHW first; an explicit ``amp`` or
    ``channels_last`` is kept in every candidate (an explicit setting is never overridden).

    With both ``auto``: fp32 NCHW, fp32 channels_last, and each reduced precision the device
    offers in channels_last (where reduced-precision convolutions have their fast kernels).
    """
    amps: list[str] = ["none", *reduced_precisions(device)] if amp == "auto" else [amp]
    layouts = [False, True] if channels_last == "auto" else [bool(channels_last)]
    modes = [
        Mode(a, cl)  # type: ignore[arg-type]
        for a in amps
        for cl in layouts
        # Reduced precision in NCHW is left out only when the layout is the racer's to pick.
        if a == "none" or cl or channels_last != "auto" or amp != "auto"
    ]
    return modes


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU reports bf16 hardware: AMX tiles or AVX512-BF16 (oneDNN's bf16 path).

    A report, not a promise of speed: ``auto`` measures. Asked of torch's own probes; where a
    torch version lacks them, of ``/proc/cpuinfo``, so a renamed probe cannot silently turn
    bf16 off.
    """
    return _cpu_flag("amx") or _cpu_flag("avx512_bf16")


def describe_cpu() -> str:
    """The CPU's name and its bf16 support, for benchmark and run logs."""
    flags = [n for n in ("amx", "avx512_bf16") if _cpu_flag(n)]
    reported = ", ".join(flags) if flags else "no bf16 hardware"
    return f"{cpu_name()} ({reported}, {torch.get_num_threads()} threads)"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``unknown CPU``."""
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def device_name(device: torch.device | str) -> str:
    """What a speed measurement on ``device`` is about: the GPU's or the CPU's model name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name() if device.type == "cpu" else device.type


# torch's probe of each flag, and the flag's name in /proc/cpuinfo.
_PROBES = {
    "amx": ("_is_amx_tile_supported", "amx_tile"),
    "avx512_bf16": ("_is_avx512_bf16_supported", "avx512_bf16"),
}


def _cpu_flag(name: str) -> bool:
    probe, flag = _PROBES[name]
    fn = getattr(torch.cpu, probe, None)
    if fn is not None:
        return bool(fn())
    return flag in _cpuinfo_flags()


def _cpuinfo_flags() -> set[str]:
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpuinfo_lines() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return f.readlines()
    except OSError:
        return []
