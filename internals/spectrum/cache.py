"""On-disk cache of spectra, keyed by the identity of the checkpoint file that holds each tensor.

One JSON file per checkpoint file under `<cache root>/spectrum/` (see `internals.cache_paths`). A file that
changes (size, mtime, inode, path) gets a new key, so stale spectra are never shown. Kept in memory too,
per cache file, so a model's spectra come back in milliseconds once computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from internals.cache_paths import cache_root, file_identity
from internals.weights import WeightStore

VERSION = "spectrum-v1"
_ENABLED = True
_LOCK = threading.Lock()
_MEMORY: dict[Path, dict[str, Any]] = {}  # cache file -> {matrix name -> spectrum}


def use_cache(enabled: bool) -> None:
    """Turn the spectrum cache on or off for this process (`spectrum --no-cache`)."""
    global _ENABLED
    _ENABLED = enabled


def enabled() -> bool:
    return _ENABLED


def clear_memory() -> None:
    with _LOCK:
        _MEMORY.clear()


def cache_file(checkpoint: Path) -> Path:
    key = hashlib.sha256(f"{VERSION}|{file_identity(checkpoint)}".encode()).hexdigest()[:32]
    return cache_root() / "spectrum" / f"{key}.json"


def _table(path: Path) -> dict[str, Any]:
    if path not in _MEMORY:
        data: Any = {}
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            data = {}
        _MEMORY[path] = data if isinstance(data, dict) else {}
    return _MEMORY[path]


def lookup(store: WeightStore, stored: str, name: str) -> dict[str, Any] | None:
    if not _ENABLED:
        return None
    path = cache_file(store.entry(stored).file)
    with _LOCK:
        return _table(path).get(name)


def remember(store: WeightStore, stored: str, name: str, spectrum: dict[str, Any], save: bool = True) -> None:
    if not _ENABLED:
        return
    path = cache_file(store.entry(stored).file)
    with _LOCK:
        _table(path)[name] = spectrum
        if save:
            _save(path)


def flush(store: WeightStore) -> None:
    """Write the cached spectra of every file of `store` (after a batch remembered with save=False)."""
    if not _ENABLED:
        return
    with _LOCK:
        for checkpoint in {e.file for e in store}:
            path = cache_file(checkpoint)
            if path in _MEMORY:
                _save(path)


def _save(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".partial")
        with os.fdopen(fd, "w") as fh:
            json.dump(_MEMORY[path], fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home must not break spectra: they are recomputed next time
