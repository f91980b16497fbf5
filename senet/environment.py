"""What a bug report or a benchmark needs to know about this machine: versions, CPU, GPU."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import torch


def _cpuinfo_line(key: str, cpuinfo: Path) -> str | None:
    """The value of the first ``key`` line of ``/proc/cpuinfo``; None where there is none."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), or None."""
    return _cpuinfo_line("model name", cpuinfo)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where the system does not list them)."""
    return set((_cpuinfo_line("flags", cpuinfo) or "").split())


def environment() -> dict[str, Any]:
    """senet, torch, CUDA and Python versions; the CPU, its reduced-precision features and
    threads; the GPUs if any."""
    from senet.version import __version__

    flags = cpu_flags()
    info: dict[str, Any] = {
        "senet": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model() or platform.processor() or platform.machine() or "unknown CPU",
        # The flags say what the CPU offers, not what is faster: `auto` measures that.
        "cpu_features": {
            "avx512_bf16": "avx512_bf16" in flags,
            "avx512_fp16": "avx512_fp16" in flags,
            "amx": bool({"amx_tile", "amx_bf16"} & flags),
        },
        "threads": torch.get_num_threads(),
        "gpus": [],
    }
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append(
                {
                    "name": props.name,
                    "capability": f"{props.major}.{props.minor}",
                    "memory_gib": round(props.total_memory / 2**30, 1),
                }
            )
    return info


def format_environment(info: dict[str, Any]) -> str:
    """``environment()`` as the lines ``senet info`` prints."""
    features = ", ".join(k for k, on in info["cpu_features"].items() if on) or "none"
    gpus = "; ".join(
        f"{g['name']} (sm {g['capability']}, {g['memory_gib']} GiB)" for g in info["gpus"]
    )
    rows = [
        ("senet", info["senet"]),
        ("torch", info["torch"]),
        ("CUDA", info["cuda"] or "none (CPU build)"),
        ("Python", info["python"]),
        ("platform", info["platform"]),
        ("CPU", info["cpu"]),
        ("CPU features", features),
        ("threads", info["threads"]),
        ("GPU", gpus or "none"),
    ]
    return "\n".join(f"{name:<13} {value}" for name, value in rows)
