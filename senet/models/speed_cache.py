"""Speed measurements kept on disk, so ``auto`` measures once per machine and workload.

One JSON file per key under ``$SENET_CACHE_DIR`` (default ``$XDG_CACHE_HOME/senet``, else
``~/.cache/senet``), in ``speed/``. The key is a dict of everything the timing depends on
(device, torch version, threads, model, batch, input size...); its hash names the file and the
file repeats the key, so a collision or a stale format reads as a miss. Delete the folder to
measure again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

ENV_VAR = "SENET_CACHE_DIR"
FORMAT = 1  # bump when what an entry holds changes: older entries then read as misses


def cache_dir() -> Path:
    """Where senet keeps what it measured: ``$SENET_CACHE_DIR``, else the user cache folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "senet"


def _normal(fields: dict[str, Any]) -> Any:
    """``fields`` as JSON gives them back (tuples become lists), for comparing keys."""
    return json.loads(json.dumps({**fields, "format": FORMAT}, sort_keys=True, default=str))


def key_hash(fields: dict[str, Any]) -> str:
    text = json.dumps(_normal(fields), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class SpeedCache:
    """Entries (plain dicts) stored under a key dict; ``folder`` overrides ``cache_dir()``."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else cache_dir()

    def path(self, fields: dict[str, Any]) -> Path:
        return self.folder / "speed" / f"{key_hash(fields)}.json"

    def load(self, fields: dict[str, Any]) -> dict[str, Any] | None:
        """The entry stored under ``fields``, or None (absent, unreadable, or another key)."""
        try:
            data = json.loads(self.path(fields).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != _normal(fields):
            return None
        entry = data.get("entry")
        return entry if isinstance(entry, dict) else None

    def store(self, fields: dict[str, Any], entry: dict[str, Any]) -> str | None:
        """Write ``entry`` under ``fields`` (atomically); None, or why it could not be written
        (the measurement is still used, only not kept)."""
        path = self.path(fields)
        record = {
            "key": _normal(fields),
            "written": datetime.datetime.now().isoformat(timespec="seconds"),
            "entry": entry,
        }
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, indent=1, default=str)
            os.replace(tmp, path)
        except OSError as e:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            return f"cannot write the speed cache {path} ({e.strerror or e}); set {ENV_VAR}"
        return None
