"""One writer per run folder: a second `senet train` into a folder that a live process is
training into fails at once, instead of both interleaving checkpoints and metrics.

The claim is an OS file lock (``filelock``: ``flock`` on POSIX) on ``RUN/.senet-lock``, so it
ends with the process however that ends, a kill included: no stale lock is ever left to clear
by hand. The holder writes its pid and host into the file for the error message.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from types import TracebackType

import filelock

from senet.config import ConfigError

LOCK_NAME = ".senet-lock"


class RunFolderBusy(ConfigError):
    """Another live process is training into the run folder."""


class RunFolderLock:
    """Holds one run folder for this process, from :meth:`claim` until :meth:`release` (or the
    end of the ``with`` block, or of the process)."""

    def __init__(self) -> None:
        self._lock: filelock.BaseFileLock | None = None

    def claim(self, folder: Path) -> Path:
        """Lock ``folder`` (which must exist) and return it; :class:`RunFolderBusy` if a live
        process holds it. Claiming the folder this lock already holds changes nothing."""
        path = folder / LOCK_NAME
        if self._lock is not None and Path(self._lock.lock_file) == path:
            return folder
        lock = filelock.FileLock(path, timeout=0)  # busy: fail now, do not wait
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunFolderBusy(
                f"{folder} is being trained into by another process ({_owner(path)}); two "
                "writers would interleave its checkpoints and metrics. Wait for that run to end "
                "or stop it (rerun with --resume auto to continue it), or pick another "
                "output_dir=PATH"
            ) from None
        with contextlib.suppress(OSError):  # the lock still holds; only the message loses its owner
            path.write_text(f"pid {os.getpid()} on {platform.node()}\n")
        self._lock = lock
        return folder

    def claim_existing(self, folder: str | Path | None) -> None:
        """Claim ``folder`` if it exists: a rerun into a folder is refused before its
        checkpoints are read, while another process may be writing them."""
        if folder is not None and Path(folder).is_dir():
            self.claim(Path(folder))

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def folder_holder(folder: Path) -> str | None:
    """Who trains into ``folder`` now (``"pid N on HOST"``), or None when no live process does.
    Writes nothing: a folder without the lock file has no writer, since every run makes one."""
    path = folder / LOCK_NAME
    if not path.is_file():
        return None
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return _owner(path)
    lock.release()
    return None


def _owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "owner unknown"
    except OSError:
        return "owner unknown"
