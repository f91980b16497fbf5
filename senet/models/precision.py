"""Which dtype and memory layout a device runs CNNs fastest in, detected once, not assumed."""

from __future__ import annotations

import torch


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware: AMX tiles or AVX512-BF16 (oneDNN's bf16 path).

    Elsewhere bf16 is emulated and slower than fp32, so the fast path stays fp32 there.
    """
    return _cpu_flag("amx") or _cpu_flag("avx512_bf16")


def fast_dtype(device: torch.device | str) -> torch.dtype:
    """The reduced precision ``device`` accelerates, or float32 where none pays."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def describe_cpu() -> str:
    """The CPU's name and its bf16 support, for benchmark and run logs."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name
            )
    except OSError:
        pass
    flags = [n for n in ("amx", "avx512_bf16") if _cpu_flag(n)]
    return f"{name} ({', '.join(flags) if flags else 'no bf16 hardware'}, {torch.get_num_threads()} threads)"


def _cpu_flag(name: str) -> bool:
    fn = {"amx": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}[name]
    return bool(getattr(torch.cpu, fn, lambda: False)())


def choose_amp(amp: str, device: torch.device | str) -> tuple[str, str]:
    """Resolve ``train.amp`` (``auto``, ``none``, ``bf16``, ``fp16``) on ``device``, with why.

    ``auto`` is bf16 where the hardware runs it (AMX/AVX512-BF16 CPUs, CUDA with bf16), fp16 on
    older CUDA GPUs, and fp32 elsewhere. An explicit bf16 on a CPU without bf16 hardware still
    runs, emulated and slower than fp32, and the reason says so for the run log.
    """
    device = torch.device(device)
    if amp != "auto":
        slow = amp == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16()
        note = "this CPU has no bf16 hardware: emulated, slower than fp32" if slow else "as set"
        return amp, note
    dtype = fast_dtype(device)
    if dtype == torch.float32:
        return "none", f"auto: fp32 ({device.type} without bf16 hardware)"
    name = "bf16" if dtype == torch.bfloat16 else "fp16"
    where = "CPU with AMX/AVX512-BF16" if device.type == "cpu" else device.type
    return name, f"auto: {name} autocast ({where})"
