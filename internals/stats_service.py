"""Tensor statistics for the engine: exact kernel + an on-disk cache keyed by file identity.

A checkpoint file is identified by its resolved path, size, modification time and inode; statistics of its
tensors are kept in one JSON file per (checkpoint file, bins) under `$XDG_CACHE_HOME/llm-internals/stats`
(or `LLM_INTERNALS_CACHE`). A changed file gets a new key, so stale numbers are never shown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from internals.cache_paths import cache_root
from internals.weights import WeightStore

_ENABLED = True
_LOCK = threading.Lock()
_MEMORY: dict[str, dict[str, Any]] = {}  # cache key -> {tensor name -> stats}
_WARNED_UNWRITABLE = False
log = logging.getLogger("llm_internals.stats")


def use_cache(enabled: bool) -> None:
    """Turn the on-disk cache on or off for this process (`stats --no-cache`)."""
    global _ENABLED
    _ENABLED = enabled


def cache_dir() -> Path:
    return cache_root() / "stats"


def _file_key(path: Path, bins: int, value_range: tuple[float, float] | None) -> str:
    st = os.stat(path)
    ident = f"v1|{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{bins}|{value_range}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _load(key: str) -> dict[str, Any]:
    if key not in _MEMORY:
        data: dict[str, Any] = {}
        path = cache_dir() / f"{key}.json"
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            data = {}
        _MEMORY[key] = data if isinstance(data, dict) else {}
    return _MEMORY[key]


def _save(key: str) -> None:
    """Write one cache file atomically (a temporary file, then `os.replace`): a process killed mid-write
    leaves the old file or the new one, never half of one. A full disk or a read-only cache folder must not
    break statistics (they are recomputed next time): it is warned about once per process."""
    global _WARNED_UNWRITABLE
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(_MEMORY[key]))
        os.replace(tmp, folder / f"{key}.json")
    except OSError as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if not _WARNED_UNWRITABLE:
            _WARNED_UNWRITABLE = True
            log.warning("statistics are not cached: cannot write %s (%s); set LLM_INTERNALS_CACHE to a "
                        "writable folder", folder, exc.strerror or exc)


def compute_stats(store: WeightStore, name: str, bins: int = 64,
                  value_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Exact statistics of one stored tensor, computed now (no cache). With `value_range`, the histogram
    covers only that range (values outside are left out of its counts), e.g. [p1, p99] to see the bulk.
    8/16-bit tensors are read once: every statistic and both binnings derive from their pattern counts."""
    from internals.stats import compute_tensor_stats, count_patterns, dtype_info, tensor_histogram

    entry = store.entry(name)
    raw = store.raw(name)
    if dtype_info(entry.dtype).pattern_bits:
        counts = count_patterns(raw, entry.dtype, entry.shape, name=name)
        result = counts.stats(bins).to_dict()
        if value_range is not None:
            edges, hist = counts.histogram(bins, range=value_range)
    else:
        result = compute_tensor_stats(raw, entry.dtype, entry.shape, bins=bins, name=name).to_dict()
        if value_range is not None:
            edges, hist = tensor_histogram(raw, entry.dtype, entry.shape, bins=bins, range=value_range)
    if value_range is not None:
        result["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in hist]}
        result["histogram_range"] = [float(value_range[0]), float(value_range[1])]
    return result


def stats_for(store: WeightStore, name: str, bins: int = 64, value_range: tuple[float, float] | None = None,
              save: bool = True) -> dict[str, Any]:
    """Statistics of one stored tensor, from the cache when its file has not changed."""
    if not _ENABLED:
        return compute_stats(store, name, bins, value_range)
    entry = store.entry(name)
    key = _file_key(entry.file, bins, value_range)
    with _LOCK:
        cached = _load(key).get(name)
    if cached is not None:
        return cached
    result = compute_stats(store, name, bins, value_range)
    with _LOCK:
        _load(key)[name] = result
        if save:
            _save(key)
    return result


def flush(store: WeightStore, bins: int = 64) -> None:
    """Write the cached statistics of every file of `store` (after a batch computed with save=False)."""
    if not _ENABLED:
        return
    with _LOCK:
        for path in {e.file for e in store}:
            key = _file_key(path, bins, None)
            if key in _MEMORY:
                _save(key)
