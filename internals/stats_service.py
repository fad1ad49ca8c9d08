"""Tensor statistics for the engine: `StatisticsCache`, one per opened model.

Two layers, so that a tensor the user looks at is read from disk once:

- on disk: the statistics JSON of every tensor already computed, one file per (checkpoint file, bins)
  under `$XDG_CACHE_HOME/llm-internals/stats` (or `LLM_INTERNALS_CACHE`). A checkpoint file is
  identified by its resolved path, size, modification time and inode, so a changed file gets a new key
  and stale numbers are never shown.
- in memory: a bounded LRU of what re-derives any statistic exactly without the tensor: the pattern
  counts of an 8/16-bit tensor (`PatternCounts`, sparse: tens of kB each, 1 MB at most) or, for wider
  dtypes, a private copy of the values (kept only when it fits the byte budget). Showing a tensor, then clipping its
  histogram to [p1, p99], then re-binning it is one read of the tensor and two cheap derivations.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from internals.cache_paths import cache_root
from internals.weights import WeightStore

if TYPE_CHECKING:
    from internals.stats.device import DeviceCounter

log = logging.getLogger("llm_internals.stats")
_warned_unwritable = threading.Event()  # one warning per process, not one per tensor

#: Tensor bytes per group of a whole-model pass (`StatisticsCache.stats_many`).
GROUP_BYTES = 1024 * 1024 * 1024
#: Bytes of retained per-tensor data (pattern counts or wide-dtype copies) kept in memory by default.
DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024


def cache_dir() -> Path:
    return cache_root() / "stats"


def _file_key(path: Path, bins: int) -> str:
    """The cache key of a checkpoint file's statistics: its resolved path, size, modification time, inode
    and the bins. The file is stat'ed on every call (a changed file gets a new key); resolving the path and
    hashing are done once per identity (they cost ~50 us, and a whole-model pass asks per tensor)."""
    st = os.stat(path)
    return _key_of(str(path), st.st_size, st.st_mtime_ns, st.st_ino, bins)


@functools.lru_cache(maxsize=256)
def _key_of(path: str, size: int, mtime_ns: int, inode: int, bins: int) -> str:
    ident = f"v1|{Path(path).resolve()}|{size}|{mtime_ns}|{inode}|{bins}|None"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


class _Retained:
    """What re-derives one tensor's statistics: pattern counts, or a private copy of wide values."""

    __slots__ = ("counts", "dtype", "nbytes", "shape", "typed")

    def __init__(self, counts, typed: np.ndarray | None, dtype: str, shape: tuple[int, ...]) -> None:
        self.counts = counts  # PatternCounts | None
        self.typed = typed  # 1-D raw bytes copy (wide dtypes) | None
        self.dtype = dtype
        self.shape = shape
        self.nbytes = counts.nbytes if counts is not None else int(typed.nbytes)  # type: ignore[union-attr]

    def stats(self, name: str, bins: int) -> dict[str, Any]:
        from internals.stats import compute_tensor_stats

        if self.counts is not None:
            self.counts.name = name
            return self.counts.stats(bins).to_dict()
        return compute_tensor_stats(self.typed, self.dtype, self.shape, bins=bins, name=name).to_dict()

    def histogram(self, bins: int, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        from internals.stats import tensor_histogram

        if self.counts is not None:
            return self.counts.histogram(bins, range=value_range)
        return tensor_histogram(self.typed, self.dtype, self.shape, bins=bins, range=value_range)


class StatisticsCache:
    """Exact statistics of stored tensors: on-disk results plus a bounded LRU of re-derivable data.

    `enabled=False` (`stats --no-cache`) neither reads nor writes the on-disk cache; the in-memory LRU
    still spares re-reads within the process. Safe to use from several threads.
    """

    def __init__(self, enabled: bool = True, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.enabled = enabled
        self.memory_bytes = int(memory_bytes)
        self._lock = threading.Lock()
        self._disk: dict[str, dict[str, Any]] = {}  # cache key -> {tensor name -> stats}
        self._lru: OrderedDict[tuple[str, str], _Retained] = OrderedDict()
        self._lru_bytes = 0
        self._device_counter: DeviceCounter | None = None  # internals.stats.device.DeviceCounter when counting on a torch device

    def use_device(self, device: str | None) -> None:
        """Count the bit patterns of 8/16-bit tensors on a torch device ("cuda", "cuda:1"; "cpu" runs the
        same torch path on the CPU); None: the CPU kernels. `UserError` when the device is not usable."""
        if device is None:
            self._device_counter = None
            return
        from internals.stats.device import DeviceCounter

        self._device_counter = DeviceCounter(device)

    # --- on-disk results ----------------------------------------------------------------------------
    def _load(self, key: str) -> dict[str, Any]:
        if key not in self._disk:
            data: dict[str, Any] = {}
            try:
                with open(cache_dir() / f"{key}.json") as fh:
                    data = json.load(fh)
            except (OSError, ValueError):
                data = {}
            self._disk[key] = data if isinstance(data, dict) else {}
        return self._disk[key]

    def _save(self, key: str) -> None:
        """Write one cache file atomically (a temporary file, then `os.replace`): a process killed mid-write
        leaves the old file or the new one, never half of one. A full disk or a read-only cache folder must
        not break statistics (they are recomputed next time): it is warned about once per process."""
        folder = cache_dir()
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".partial")  # not *.json until whole
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(self._disk[key]))  # one C-encoder pass (json.dump writes small chunks)
            os.replace(tmp, folder / f"{key}.json")
        except OSError as exc:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            if not _warned_unwritable.is_set():
                _warned_unwritable.set()
                log.warning("statistics are not cached: cannot write %s (%s); set LLM_INTERNALS_CACHE to a "
                            "writable folder", folder, exc.strerror or exc)

    def forget_loaded(self) -> None:
        """Drop everything held in memory (what a new process would see: only the files on disk)."""
        with self._lock:
            self._disk.clear()
            self._lru.clear()
            self._lru_bytes = 0

    # --- retained data ------------------------------------------------------------------------------
    def retained(self, store: WeightStore, name: str) -> _Retained:
        """The re-derivable data of a stored tensor: from the LRU, else read once (and kept if it fits)."""
        from internals.stats import count_patterns, dtype_info

        entry = store.entry(name)
        key = (str(entry.file), name)
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
                return hit
        raw = store.raw(name)
        if dtype_info(entry.dtype).pattern_bits:
            counter = self._device_counter.count if self._device_counter is not None else count_patterns
            kept = _Retained(counter(raw, entry.dtype, entry.shape, name=name), None, entry.dtype, entry.shape)
        else:
            fits = raw.nbytes <= self.memory_bytes // 2
            kept = _Retained(None, np.array(raw) if fits else raw, entry.dtype, entry.shape)
            if not fits:
                return kept  # too big to keep: a clip or re-bin reads this tensor again
        self._keep(key, kept)
        return kept

    def _keep(self, key: tuple[str, str], kept: _Retained) -> None:
        with self._lock:
            if key not in self._lru:
                self._lru[key] = kept
                self._lru_bytes += kept.nbytes
            while self._lru_bytes > self.memory_bytes and len(self._lru) > 1:
                _, old = self._lru.popitem(last=False)
                self._lru_bytes -= old.nbytes

    # --- statistics ---------------------------------------------------------------------------------
    def compute(self, store: WeightStore, name: str, bins: int = 64,
                value_range: tuple[float, float] | None = None) -> dict[str, Any]:
        """Exact statistics of one stored tensor (no on-disk cache). With `value_range` the histogram covers
        only that range (values outside are left out of its counts), e.g. [p1, p99] to see the bulk."""
        from internals.stats.core import _check_bins

        bins = _check_bins(bins)
        kept = self.retained(store, name)
        result = kept.stats(name, bins)
        if value_range is not None:
            edges, hist = kept.histogram(bins, value_range)
            result["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in hist]}
            result["histogram_range"] = [float(value_range[0]), float(value_range[1])]
        return result

    def stats(self, store: WeightStore, name: str, bins: int = 64,
              value_range: tuple[float, float] | None = None, save: bool = True) -> dict[str, Any]:
        """Statistics of one stored tensor: from the on-disk cache when its file has not changed (full
        range only; a clipped histogram is derived from the retained data, never stored)."""
        if not self.enabled or value_range is not None:
            return self.compute(store, name, bins, value_range)
        cached = self._cached(store, name, bins)
        if cached is not None:
            return cached
        key = _file_key(store.entry(name).file, bins)
        result = self.compute(store, name, bins)
        with self._lock:
            self._load(key)[name] = result
            if save:
                self._save(key)
        return result

    def stats_many(self, store: WeightStore, names: list[str], bins: int = 64,
                   progress: Callable[[int, int, str], None] | None = None) -> Iterator[dict[str, Any]]:
        """`stats(..., save=False)` of each name in order (call `flush` after), whole-model fast.

        Names are taken in groups of about `GROUP_BYTES` of tensor data; the 8/16-bit tensors of a group
        that are neither on disk nor retained are counted in one scheduling pass (`count_patterns_many`),
        so the worker threads never wait for each other at tensor boundaries, and the next group is counted
        while this one's statistics are derived and handed out (the counting threads never wait for that).
        """
        from internals.stats import count_patterns_many, dtype_info

        groups: list[tuple[int, list[str]]] = []  # (position of its first name, names)
        i = 0
        while i < len(names):
            group: list[str] = []
            size = 0
            while i < len(names) and (not group or size < GROUP_BYTES):
                group.append(names[i])
                size += store.entry(names[i]).nbytes
                i += 1
            groups.append((i - len(group), group))

        def count(group: list[str]) -> list[tuple[str, Any, Any]]:
            todo = [n for n in group if dtype_info(store.entry(n).dtype).pattern_bits
                    and self._cached(store, n, bins) is None and not self._retains(store, n)]
            if not todo or self._device_counter is not None:
                return []
            entries = [store.entry(n) for n in todo]
            return list(zip(todo, entries, count_patterns_many([(store.raw(n), e.dtype, e.shape, n)
                                                                for n, e in zip(todo, entries)])))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats-ahead") as ahead_pool:
            ahead: Future[list[tuple[str, Any, Any]]] | None = None
            for k, (first, group) in enumerate(groups):
                if progress:
                    progress(first, len(names), group[0])
                counted = ahead.result() if ahead is not None else count(group)
                ahead = ahead_pool.submit(count, groups[k + 1][1]) if k + 1 < len(groups) else None
                for n, e, c in counted:
                    self._keep((str(e.file), n), _Retained(c, None, e.dtype, e.shape))
                for n in group:
                    yield self.stats(store, n, bins, save=False)

    def _retains(self, store: WeightStore, name: str) -> bool:
        with self._lock:
            return (str(store.entry(name).file), name) in self._lru

    def _cached(self, store: WeightStore, name: str, bins: int) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        key = _file_key(store.entry(name).file, bins)
        with self._lock:
            return self._load(key).get(name)

    def clipped(self, store: WeightStore, name: str, bins: int = 64) -> dict[str, Any]:
        """`stats`, with the histogram over [p1, p99] when that range is not empty (the explorer's clip)."""
        result = self.stats(store, name, bins)
        q = result["quantiles"]
        if q["p1"] is not None and q["p99"] is not None and q["p99"] > q["p1"]:
            return self.compute(store, name, bins, (q["p1"], q["p99"]))
        return result

    def flush(self, store: WeightStore, bins: int = 64) -> None:
        """Write the statistics of every file of `store` (after a batch computed with save=False)."""
        if not self.enabled:
            return
        with self._lock:
            for path in {e.file for e in store}:
                key = _file_key(path, bins)
                if key in self._disk:
                    self._save(key)
