"""Where a run ran: the code's git commit and the CPU model, for the run's summary.json.

A result is traced to the code that produced it (the commit, and whether the checkout had
uncommitted changes) and to the machine's CPU, whose kernels change a run's last digits. Both
are None where they cannot be known: senet installed from a wheel, git missing, no /proc.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from senet.environment import cpu_model

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # senet/


def code_commit(package_dir: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the git checkout that ``package_dir`` is tracked in; dirty when a
    tracked file has uncommitted changes. (None, None) when the package is not a tracked folder
    of a checkout (a wheel installed in a virtual environment inside a clone is not)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["git", "-C", str(package_dir), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None, None
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    if head.returncode != 0 or status.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip())


def run_provenance() -> dict[str, Any]:
    """The summary's ``commit``, ``commit_dirty`` and ``cpu`` fields for a run starting now."""
    commit, dirty = code_commit()
    return {"commit": commit, "commit_dirty": dirty, "cpu": cpu_model()}
