"""What a bug report or a benchmark needs to know about this machine: versions, CPU, GPU."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where the system does not list them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def environment() -> dict[str, Any]:
    """senet, torch, CUDA and Python versions; the CPU, its reduced-precision features and
    threads; the GPUs if any."""
    from senet import __version__

    flags = cpu_flags()
    info: dict[str, Any] = {
        "senet": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
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
