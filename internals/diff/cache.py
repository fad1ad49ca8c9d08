"""On-disk cache of diff results, keyed by the identity of both sides' files (path, size, mtime, inode).

One JSON file per (BASE files, TUNED files) pair under `<cache root>/diff/`; entries are per tensor (its
weight figures for a number of bins, and its rank figures). A changed file changes the key, so nothing
stale is ever read. Writes go to a temporary file then `os.replace`, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from internals.cache_paths import cache_root

_VERSION = "diff-v1"


def _identity(paths: list[Path]) -> str:
    parts = []
    for p in sorted(Path(x).resolve() for x in paths):
        st = p.stat()
        parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}")
    return ";".join(parts)


class DiffCache:
    """Per-tensor results of one (BASE, TUNED) pair; `save()` writes what was added."""

    def __init__(self, base_files: list[Path], tuned_files: list[Path], enabled: bool = True) -> None:
        key = hashlib.sha256(f"{_VERSION}|{_identity(base_files)}|{_identity(tuned_files)}".encode()).hexdigest()[:32]
        self.path = cache_root() / "diff" / f"{key}.json"
        self.enabled = enabled
        self._data: dict[str, Any] = {}
        self._dirty = False
        if enabled and self.path.is_file():
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}

    def get(self, key: str) -> Any:
        return self._data.get(key) if self.enabled else None

    def put(self, key: str, value: Any) -> None:
        if self.enabled:
            self._data[key] = value
            self._dirty = True

    def save(self) -> None:
        if not (self.enabled and self._dirty):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(self._data, f)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:  # a read-only cache folder only costs the speed-up
            pass
