"""A live process that holds a run folder, as a `senet train` still running there does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hold_run_folder(folder: Path) -> subprocess.Popen:
    """Start a process that claims ``folder`` and keeps it until killed; returns once it holds."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from senet.train import RunFolderLock; lock = RunFolderLock(); "
            f"lock.claim(pathlib.Path({str(folder)!r})); print('held', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if holder.stdout.readline().strip() != "held":
        holder.kill()
        raise RuntimeError(f"the holder process could not claim {folder}")
    return holder
