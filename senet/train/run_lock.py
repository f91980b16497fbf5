"""One writer per run folder: a second `senet train` into a folder that a live process is
training into fails at once, instead of both interleaving checkpoints and metrics.

The claim is ``flock`` on ``RUN/.senet-lock``, so it ends with the process however that ends, a
kill included: no stale lock is ever left to clear by hand. The holder writes its pid and host
into the file for the error message. ``flock`` directly rather than a lock library: the
libraries fall back to a marker file where a filesystem has no ``flock`` (some network mounts),
and a marker left by a killed run would refuse every later run into its folder; here such a
filesystem, or a platform without ``fcntl`` (Windows), trains unguarded, as before.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from types import TracebackType
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from senet.config import ConfigError

LOCK_NAME = ".senet-lock"


class RunFolderBusy(ConfigError):
    """Another live process is training into the run folder."""


class RunFolderLock:
    """Holds one run folder for this process, from :meth:`claim` until :meth:`release` (or the
    end of the ``with`` block, or of the process)."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._path: Path | None = None

    def claim(self, folder: Path) -> Path:
        """Lock ``folder`` (which must exist) and return it; :class:`RunFolderBusy` if a live
        process holds it. Claiming the folder this lock already holds changes nothing."""
        path = folder / LOCK_NAME
        if self._path is not None and self._path == path.resolve():
            return folder
        handle = _try_lock(path)
        if handle is None:
            raise RunFolderBusy(
                f"{folder} is being trained into by another process ({_owner(path)}); two "
                "writers would interleave its checkpoints and metrics. Wait for that run to end "
                "or stop it (rerun with --resume auto to continue it), or pick another "
                "output_dir=PATH"
            )
        if handle is not _UNGUARDED:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {platform.node()}\n")
            handle.flush()
            self.release()
            self._file = handle
        self._path = path.resolve()
        return folder

    def claim_existing(self, folder: str | Path | None) -> None:
        """Claim ``folder`` if it exists: a rerun into a folder is refused before its
        checkpoints are read, while another process may be writing them."""
        if folder is not None and Path(folder).is_dir():
            self.claim(Path(folder))

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor drops the flock
        self._file = self._path = None

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


_UNGUARDED = object()  # _try_lock's answer where no flock can be taken: go on without one


def _try_lock(path: Path) -> IO[str] | object | None:
    """The locked file, None when a live process holds it, or ``_UNGUARDED``."""
    if fcntl is None:
        return _UNGUARDED
    try:
        handle = path.open("a+")  # created if missing; not truncated, so the holder's line stays
    except OSError:  # a read-only folder: nobody trains into it
        return _UNGUARDED
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except OSError:  # ENOLCK, ENOSYS, EOPNOTSUPP: a filesystem without flock
        handle.close()
        return _UNGUARDED
    return handle


def folder_holder(folder: Path) -> str | None:
    """Who trains into ``folder`` now (``"pid N on HOST"``), or None when no live process does.
    Writes nothing: a folder without the lock file has no writer, since every run makes one."""
    path = folder / LOCK_NAME
    if not path.is_file():
        return None
    handle = _try_lock(path)
    if handle is None:
        return _owner(path)
    if handle is not _UNGUARDED:
        handle.close()
    return None


def _owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "owner unknown"
    except OSError:
        return "owner unknown"
