"""Exact per-tensor statistics (see the package docstring for the method and the public API)."""

from __future__ import annotations

import functools
import itertools
import math
import mmap
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from internals.errors import UserError
from internals.stats._dtypes import DtypeInfo, dtype_info, pattern_tables

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99),
)
#: Elements per block: the unit of work of one thread (8/16-bit: counted in one call; wider integers
#: are converted to float64 one block at a time, so extra memory is threads x block x 8 bytes at most).
CHUNK_ELEMENTS = 4 * 1024 * 1024
#: Tensors are split into at least this many elements per block, so small tensors stay on one thread.
MIN_BLOCK_ELEMENTS = 512 * 1024
#: Mid-size tensors are cut into up to this many blocks (spread over the threads). The block layout never
#: depends on the thread count, so neither do the (floating-point) results.
TARGET_BLOCKS = 8

_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


_KERNELS_LOCK = threading.Lock()


def _kernels():
    if "numba" not in sys.modules or "internals.stats._kernels" not in sys.modules:
        with _KERNELS_LOCK:
            _import_numba_without_scipy()
    from internals.stats import _kernels as k  # lazy: importing numba costs ~0.15 s

    return k


#: Modules numba would import at start-up for features these kernels never use: scipy's BLAS (probed when
#: numba.np.arraymath is imported, for np.linalg / np.dot in jitted code) and cffi (numba.core.typing.
#: cffi_utils, for calling cffi functions). Together 0.1-0.6 s of every `stats` command.
_UNUSED_BY_KERNELS = ("scipy.linalg.cython_blas", "cffi")


def _import_numba_without_scipy() -> None:
    """Import numba, and the two numba modules that would import `_UNUSED_BY_KERNELS`, while those read as
    absent (a process that already imported one keeps it; later imports of them work as usual); then set
    up numba's CPU target (what the first kernel call would do) and import our kernels."""
    blocked = [name for name in _UNUSED_BY_KERNELS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import` of it now fails at once
    try:
        import numba  # noqa: F401
        import numba.core.typing.cffi_utils  # noqa: F401
        import numba.np.arraymath  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    try:  # what the first call of a compiled kernel does: register numba's typing and lowering
        from numba.core.registry import cpu_target

        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()
    except Exception:  # noqa: BLE001 - an internal API: without it the first call does the same, slower
        pass
    import internals.stats._kernels  # noqa: F401


_THREADS_OVERRIDE: int | None = None


def set_threads(n: int | None) -> None:
    """Use `n` worker threads per tensor from now on (None: back to NUMBA_NUM_THREADS / the default)."""
    global _THREADS_OVERRIDE
    if n is not None and int(n) < 1:
        raise ValueError("threads must be at least 1")
    _THREADS_OVERRIDE = None if n is None else int(n)


def threads() -> int:
    """Worker threads per tensor: `set_threads`, else NUMBA_NUM_THREADS, else numba's default (usable CPUs)."""
    if _THREADS_OVERRIDE is not None:
        return _THREADS_OVERRIDE
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if "numba" not in sys.modules:
        _import_numba_without_scipy()
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]  # numba sets its config at import


def _pool(n: int) -> ThreadPoolExecutor:
    """The shared worker pool (recreated when more threads are wanted, or in a forked child)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid() or _POOL._max_workers < n:  # noqa: SLF001
            old = _POOL if _POOL_PID == os.getpid() else None
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tensor-stats")
            _POOL_PID = os.getpid()
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def _block_size(n: int, chunk_elements: int | None) -> int:
    if chunk_elements is not None:
        if int(chunk_elements) < 1:
            raise ValueError("chunk_elements must be positive")
        return min(int(chunk_elements), 2**31)
    return max(1, min(CHUNK_ELEMENTS, max(MIN_BLOCK_ELEMENTS, -(-n // TARGET_BLOCKS))))


def _run_blocks(n: int, block: int, make_state: Callable[[], Any], work: Callable[[Any, int, int, int], None]) -> list:
    """Call work(state, block_index, lo, hi) for every block of [0, n), one state per worker thread.

    Workers take blocks from a shared counter (a thread that gets less CPU takes fewer blocks) and
    release the GIL inside the kernels. Returns the workers' states.
    """
    nblocks = -(-n // block)
    nt = min(threads(), nblocks)
    if nt <= 1:
        state = make_state()
        for i in range(nblocks):
            work(state, i, i * block, min(n, (i + 1) * block))
        return [state]
    counter = itertools.count()

    def worker():
        state = make_state()
        while (i := next(counter)) < nblocks:
            work(state, i, i * block, min(n, (i + 1) * block))
        return state

    futures = [_pool(nt).submit(worker) for _ in range(nt)]
    return [f.result() for f in futures]


class _Counts32:
    """A worker's uint32 counting table, flushed into int64 before it could overflow."""

    __slots__ = ("c32", "total", "pending")

    def __init__(self, size: int) -> None:
        self.c32 = np.zeros(size, np.uint32)
        self.total: np.ndarray | None = None
        self.pending = 0

    def reserve(self, m: int) -> np.ndarray:
        if self.pending + m > 0xFFFFFFFF:
            self.flush()
        self.pending += m
        return self.c32

    def flush(self) -> np.ndarray:
        if self.total is None:
            self.total = np.zeros(self.c32.size, np.int64)
        self.total += self.c32
        self.c32[:] = 0
        self.pending = 0
        return self.total


def _f(x: Any) -> float | None:
    """JSON-safe float: None for NaN/inf/None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------------
# result type


@dataclass
class TensorStats:
    """Statistics of one tensor; `to_dict()` is the JSON item of docs/contracts.md ("Tensor statistics").

    Moments, quantiles and histogram are over the finite values; undefined values (no finite value) are
    None. With no finite value the histogram follows numpy (edges over [0, 1], all counts 0).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str  # readable torch-style name, e.g. "bfloat16"
    numel: int
    mean: float | None
    std: float | None  # population standard deviation
    min: float | None
    max: float | None
    abs_mean: float | None
    rms: float | None
    l2_norm: float | None
    zeros: int
    nan: int
    inf: int
    quantiles: dict[str, float | None]
    kurtosis: float | None  # excess kurtosis (normal = 0); None when std == 0
    histogram_edges: list[float] = field(default_factory=list)
    histogram_counts: list[int] = field(default_factory=list)

    @property
    def finite(self) -> int:
        return self.numel - self.nan - self.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": [int(s) for s in self.shape],
            "dtype": self.dtype,
            "numel": int(self.numel),
            "mean": _f(self.mean),
            "std": _f(self.std),
            "min": _f(self.min),
            "max": _f(self.max),
            "abs_mean": _f(self.abs_mean),
            "rms": _f(self.rms),
            "l2_norm": _f(self.l2_norm),
            "zeros": int(self.zeros),
            "nan": int(self.nan),
            "inf": int(self.inf),
            "quantiles": {k: _f(self.quantiles.get(k)) for k, _ in QUANTILES},
            "kurtosis": _f(self.kurtosis),
            "histogram": {
                "edges": [_f(e) for e in self.histogram_edges],
                "counts": [int(c) for c in self.histogram_counts],
            },
        }


# --------------------------------------------------------------------------------------------------
# numpy-compatible building blocks


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's `_lerp` (used by np.quantile's 'linear' method), bit for bit."""
    d = b - a
    if t >= 0.5:
        return b - d * (1.0 - t)
    return a + d * t


def _quantile_ranks(n: int) -> list[tuple[str, int, int, float]]:
    """For each quantile: (key, previous rank, next rank, gamma) as numpy's 'linear' method computes them."""
    out = []
    for key, q in QUANTILES:
        v = (n - 1) * q
        prev = math.floor(v)
        gamma = v - prev
        nxt = prev + 1
        if v >= n - 1:
            prev = nxt = n - 1
        out.append((key, int(prev), int(nxt), gamma))
    return out


def histogram_edges(lo: float, hi: float, bins: int) -> tuple[np.ndarray, float, float]:
    """numpy.histogram's edges for the range [lo, hi]: (edges, first, last); an empty range is widened by ±0.5."""
    first, last = float(lo), float(hi)
    if not (math.isfinite(first) and math.isfinite(last)) or first > last:
        raise UserError(f"histogram range [{lo}, {hi}] must be finite with min <= max")
    if first == last:
        first -= 0.5
        last += 0.5
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=np.float64), first, last


def histogram_from_counts(values: np.ndarray, counts: np.ndarray, bins: int = 64,
                          range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of a multiset given as distinct finite `values` with integer `counts`.

    Exactly `numpy.histogram(np.repeat(values, counts), bins, range)`: equal-width bins over `range`
    (default [min, max] of the values), last bin closed, values outside the range left out.
    Returns (edges float64[bins+1], counts int64[bins]).
    """
    bins = _check_bins(bins)
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts)
    keep = counts > 0
    values, counts = values[keep], counts[keep]
    if range is None:
        if values.size == 0:
            range = (0.0, 1.0)
        else:
            range = (float(values.min()), float(values.max()))
    edges, first, last = histogram_edges(range[0], range[1], bins)
    if values.size == 0:
        return edges, np.zeros(bins, np.int64)
    h, _ = np.histogram(values, bins=bins, range=(first, last), weights=counts.astype(np.float64))
    return edges, np.rint(h).astype(np.int64)


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise UserError(f"bins must be a positive integer, not {bins!r}")
    return int(bins)


# --------------------------------------------------------------------------------------------------
# 8/16-bit dtypes: counts of every bit pattern


class PatternCounts:
    """Counts of every bit pattern of an 8- or 16-bit tensor: everything else derives from these exactly.

    Held sparse: the patterns that occur and how often (a bf16 weight matrix uses a few thousand of the
    65,536), ordered by value, so deriving statistics and keeping many tensors' counts cost what occurs,
    not the table size. `counts` gives the dense table (int64, 256 or 65,536 entries; built on each call).
    Keep one per tensor to re-bin or re-query without reading the tensor again: `stats(bins)` builds a
    full `TensorStats`, `histogram(bins, range)` re-bins any range (e.g. a zoom of the explorer),
    `quantile(q)` gives any quantile. Counts of several tensors of one dtype add up (`a + b`) to the
    statistics of their union.

    Build it from a dense table (`PatternCounts(dtype, counts, shape, name)`) or from distinct patterns and
    their counts (`patterns=..., pattern_counts=...`, each pattern once, any order).
    """

    def __init__(self, dtype: str, counts: Any = None, shape: tuple[int, ...] | None = None, name: str = "", *,
                 patterns: Any = None, pattern_counts: Any = None) -> None:
        self._info = dtype_info(dtype)
        self.dtype = self._info.code  # safetensors code
        self._tables = pattern_tables(self.dtype)
        self.shape = None if shape is None else tuple(int(s) for s in shape)  # None: 1-D of numel
        self.name = name
        size = self._tables.values.size
        if counts is not None:
            dense = np.asarray(counts, dtype=np.int64)
            if dense.shape != (size,):
                raise ValueError(f"{self.dtype} needs {size} counts, got {dense.shape}")
            pats = np.flatnonzero(dense)
            cnts = dense[pats]
        else:
            pats = np.asarray(patterns if patterns is not None else (), dtype=np.int64)
            cnts = np.asarray(pattern_counts if pattern_counts is not None else (), dtype=np.int64)
            if pats.shape != cnts.shape or pats.ndim != 1 or (pats.size and not 0 <= pats.min() <= pats.max() < size):
                raise ValueError(f"{self.dtype} patterns must be 1-D in [0, {size}) with one count each")
        rank = self._tables.rank[pats]
        finite = rank >= 0
        order = np.argsort(rank[finite])
        self._finite_pats = pats[finite][order]  # ascending by value
        self._finite_cnts = cnts[finite][order]
        self._other_pats = pats[~finite]  # NaN and infinities
        self._other_cnts = cnts[~finite]
        self._numel = int(self._finite_cnts.sum()) + int(self._other_cnts.sum())

    def __add__(self, other: PatternCounts) -> PatternCounts:
        if other.dtype != self.dtype:
            raise ValueError(f"cannot add {self.dtype} and {other.dtype} pattern counts")
        return PatternCounts(self.dtype, self.counts + other.counts, (int(self.numel + other.numel),), self.name)

    @property
    def counts(self) -> np.ndarray:
        """The dense table (a new int64 array of 256 or 65,536 entries): counts[p] is the number of elements
        whose raw little-endian bits equal p."""
        dense = np.zeros(self._tables.values.size, np.int64)
        dense[self._finite_pats] = self._finite_cnts
        dense[self._other_pats] = self._other_cnts
        return dense

    @property
    def nbytes(self) -> int:
        """Bytes held (the sparse counts)."""
        return sum(a.nbytes for a in (self._finite_pats, self._finite_cnts, self._other_pats, self._other_cnts))

    @property
    def numel(self) -> int:
        return self._numel

    @property
    def values(self) -> np.ndarray:
        """float64 value of every pattern (NaN for NaN patterns)."""
        return self._tables.values

    def sorted_finite(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct finite values ascending, their counts), patterns with a zero count left out."""
        return self._tables.values[self._finite_pats], self._finite_cnts

    def histogram(self, bins: int = 64, range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """numpy.histogram of the finite values (default range [min, max]): (edges, counts)."""
        vals, cnt = self.sorted_finite()
        return histogram_from_counts(vals, cnt, bins, range)

    def quantile(self, q: float) -> float | None:
        """numpy.quantile(finite values, q) ('linear'), exactly; None when there is no finite value."""
        vals, cnt = self.sorted_finite()
        n = int(cnt.sum())
        if n == 0:
            return None
        cum = np.cumsum(cnt)
        v = (n - 1) * float(q)
        prev = math.floor(v)
        gamma = v - prev
        nxt = prev + 1
        if v >= n - 1:
            prev = nxt = n - 1
        a, b = vals[np.searchsorted(cum, [prev, nxt], side="right")]
        return _lerp(float(a), float(b), gamma)

    def stats(self, bins: int = 64) -> TensorStats:
        """Every statistic of `TensorStats`, derived exactly from the counts (tens of microseconds)."""
        bins = _check_bins(bins)
        t = self._tables
        numel = self._numel
        nan = int(self._other_cnts[t.is_nan[self._other_pats]].sum())
        inf = numel - int(self._finite_cnts.sum()) - nan
        zeros = int(self._finite_cnts[t.is_zero[self._finite_pats]].sum())
        shape = self.shape if self.shape is not None else (numel,)
        n = numel - nan - inf
        if n == 0:
            edges, hist = histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
            return _empty_stats(self.name, shape, self._info, numel, nan, inf, edges, hist)
        # distinct finite patterns by value (min and max give the histogram range), then one sweep
        pats = self._finite_pats
        mn, mx = float(t.values[pats[0]]), float(t.values[pats[-1]])
        edges, first, last = histogram_edges(mn, mx, bins)
        hist = np.zeros(bins, np.int64)
        qranks = _quantile_ranks(n)
        ranks = np.array(sorted({r for _, a, b, _ in qranks for r in (a, b)}), np.int64)
        ranked = np.zeros(ranks.size, np.float64)
        _n, s1, sa, sq, s2, s4 = _kernels().summarize_counts(self._finite_cnts, pats, t.values, ranks, edges, first,
                                                             last, hist, ranked)
        value = dict(zip(ranks.tolist(), ranked.tolist()))
        quantiles: dict[str, float | None] = {key: _lerp(value[a], value[b], g) for key, a, b, g in qranks}
        mean = mn if mn == mx else s1 / n
        m2 = 0.0 if mn == mx else s2 / n
        m4 = s4 / n
        return TensorStats(
            name=self.name, shape=shape, dtype=self._info.name, numel=numel,
            mean=mean, std=math.sqrt(m2), min=mn, max=mx,
            abs_mean=sa / n, rms=math.sqrt(sq / n), l2_norm=math.sqrt(sq),
            zeros=zeros, nan=nan, inf=inf, quantiles=quantiles,
            kurtosis=(m4 / (m2 * m2) - 3.0) if m2 > 0 else None,
            histogram_edges=edges.tolist(), histogram_counts=hist.tolist(),
        )


def _empty_stats(name, shape, info: DtypeInfo, numel, nan, inf, edges, hist) -> TensorStats:
    return TensorStats(
        name=name, shape=tuple(shape), dtype=info.name, numel=numel, mean=None, std=None, min=None,
        max=None, abs_mean=None, rms=None, l2_norm=None, zeros=0, nan=nan, inf=inf,
        quantiles={k: None for k, _ in QUANTILES}, kurtosis=None,
        histogram_edges=edges.tolist(), histogram_counts=hist.tolist(),
    )


# --------------------------------------------------------------------------------------------------
# input handling


def _as_bytes(raw: Any) -> np.ndarray:
    """A 1-D uint8 view (no copy) of a numpy array, memoryview, bytes, mmap or other buffer."""
    if isinstance(raw, np.ndarray):
        a = np.asarray(raw)  # drops subclasses such as np.memmap (numba wants plain arrays)
        if a.dtype != np.uint8 or a.ndim != 1:
            if not a.flags.c_contiguous:
                raise ValueError("raw must be a contiguous buffer of the tensor's bytes")
            a = a.reshape(-1).view(np.uint8)
    else:
        a = np.frombuffer(raw, dtype=np.uint8)
    return a


def _typed_view(raw: Any, info: DtypeInfo, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    a = _as_bytes(raw)
    numel = math.prod(int(s) for s in shape)
    if a.size != numel * int(info.itemsize):
        raise UserError(
            f"tensor data has {a.size} bytes but {info.code} {list(shape)} needs {numel * int(info.itemsize)}")
    # 8/16-bit dtypes are counted by bit pattern: read them as unsigned integers of their width
    np_dtype = {1: "u1", 2: "<u2"}[int(info.itemsize)] if info.pattern_bits else info.numpy
    typed = a.view(np_dtype)
    typed.flags.writeable = False  # one compiled specialisation for memory maps and arrays alike
    return typed, numel


def _block_view(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """x[lo:hi]; copied when the data is not aligned for its dtype (bounded by the block)."""
    part = x[lo:hi]
    if not part.flags.aligned:
        part = np.array(part)
        part.flags.writeable = False
    return part


# --------------------------------------------------------------------------------------------------
# public entry points


def count_patterns(raw: Any, dtype: str, shape: tuple[int, ...] | None = None, name: str = "", *,
                   chunk_elements: int | None = None) -> PatternCounts:
    """Count every bit pattern of an 8/16-bit tensor (BF16, F16, F8_*, I8, U8, I16, U16, BOOL) in one pass."""
    return count_patterns_many([(raw, dtype, shape, name)], chunk_elements=chunk_elements)[0]


def count_patterns_many(items: list[tuple[Any, str, tuple[int, ...] | None, str]], *,
                        chunk_elements: int | None = None) -> list[PatternCounts]:
    """`count_patterns` of many tensors [(raw, dtype, shape, name), ...] in one pass over their memory.

    Tensors that are views of one buffer (a safetensors memory map) are counted as ranges of that one
    array: the ranges are cut into spans of about the same size (`SPAN_ELEMENTS`, or `chunk_elements`)
    that the worker threads take from a shared counter, one kernel call per span, so threads never wait
    at tensor boundaries and small tensors cost no call of their own. Each thread counts into one uint32
    table that it keeps, and the kernel writes each piece's non-zero counts out sparse, so no table is
    allocated, zeroed or merged per tensor; a tensor cut into several pieces gets its pieces' counts
    added. Same counts as counting each tensor alone.
    """
    jobs: list[tuple[DtypeInfo, tuple[int, ...], str]] = []
    plans: dict[tuple[int, int, int], _Buffer] = {}
    pieces: list[tuple[_Buffer, int, int, int]] = []  # (buffer, job, lo, hi) in x elements
    for j, (raw, dtype, shape, name) in enumerate(items):
        info = dtype_info(dtype)
        if not info.pattern_bits:
            raise UserError(f"dtype {info.code} has no pattern counts (only 8- and 16-bit dtypes)")
        if shape is None:
            shape = (_as_bytes(raw).size // int(info.itemsize),)
        shape = tuple(int(s) for s in shape)
        typed, numel = _typed_view(raw, info, shape)
        jobs.append((info, shape, name))
        if numel:
            buf, lo = _Buffer.locate(typed, plans)
            pieces.append((buf, j, lo, lo + numel))
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in jobs]
    if pieces:
        total = sum(hi - lo for _b, _j, lo, hi in pieces)
        span = _span_size(total, chunk_elements)
        spans = _spans(pieces, span)
        k = _kernels()
        results: list[Any] = [None] * len(spans)
        files: dict[str, int] = {}
        try:
            for buf in plans.values():
                ranges = [(lo, hi) for b, _j, lo, hi in pieces if b is buf]
                if buf.path is not None and _mapped_in(buf.x, ranges):
                    buf.path = None  # already in this process's page tables: counting the map is cheaper
                if buf.path is not None and _maps_cheaply(buf, sum(hi - lo for lo, hi in ranges)):
                    buf.path = None  # the file's pages are cached in 2 MiB folios: mapping them costs nothing
                if buf.path is not None and buf.path not in files:
                    files[buf.path] = os.open(buf.path, os.O_RDONLY)

            def work(_st: None, i: int, _lo: int, _hi: int) -> None:
                buf, starts, stops, span_jobs = spans[i]
                if buf.path is None:
                    results[i] = _count_mapped(k, buf, starts, stops, span_jobs)
                else:
                    results[i] = _count_read(k, buf, files[buf.path], starts, stops, span_jobs)

            _run_blocks(len(spans), 1, lambda: None, work)
        finally:
            for fd in files.values():
                os.close(fd)
        for pats, cnts, lens, span_jobs in results:
            ends = np.cumsum(lens).tolist()
            for j, lo, hi in zip(span_jobs, [0, *ends[:-1]], ends):
                found[j].append((pats[lo:hi], cnts[lo:hi]))
    out = []
    for (info, shape, name), parts in zip(jobs, found):
        pats, cnts = _add_sparse(parts, 1 << info.pattern_bits)
        out.append(PatternCounts(info.code, None, shape, name, patterns=pats, pattern_counts=cnts))
    return out


#: Elements per span of `count_patterns_many` (the unit of work of one thread, one kernel call): small
#: enough that the threads finish together, large enough that a call's cost is negligible; below 2**32,
#: so a piece never overflows a uint32 table.
SPAN_ELEMENTS = 16 * 1024 * 1024

_LOCAL = threading.local()


def _span_size(total: int, chunk_elements: int | None) -> int:
    """Elements per span: `chunk_elements` when given, else about 16 spans per thread (the last ones keep
    every thread busy to the end) of MIN_BLOCK_ELEMENTS to SPAN_ELEMENTS."""
    if chunk_elements is not None:
        return _block_size(total, chunk_elements)
    return max(MIN_BLOCK_ELEMENTS, min(SPAN_ELEMENTS, -(-total // (16 * threads()))))


def _thread_table(bits: int) -> np.ndarray:
    """This thread's uint32 counting table for `bits`-bit patterns, kept across calls (the kernel leaves
    it zeroed), so a thread allocates and zeroes it once."""
    tables = getattr(_LOCAL, "tables", None)
    if tables is None:
        tables = _LOCAL.tables = {}
    table = tables.get(bits)
    if table is None:
        table = tables[bits] = np.zeros(1 << bits, np.uint32)
    return table


#: Bytes read at a time from a file by one thread: a read-only memory map of a file that the kernel caches in
#: small folios is counted by reading the file rather than touching the map (mapping its pages into a fresh
#: process costs about 0.07 s per GB here, more than the copy of a read into the thread's cache-sized
#: buffer, already mapped); one cached in 2 MiB folios is counted from the map (`_maps_cheaply`).
READ_BYTES = 1024 * 1024


def _thread_buffer() -> np.ndarray:
    """This thread's read buffer (READ_BYTES, 8-byte aligned), kept across calls."""
    buf = getattr(_LOCAL, "read_buffer", None)
    if buf is None or buf.size != READ_BYTES:
        buf = _LOCAL.read_buffer = np.empty(READ_BYTES, np.uint8)
    return buf


def _count_mapped(k, buf: _Buffer, starts: np.ndarray, stops: np.ndarray, span_jobs: list[int]):
    """One span counted straight from memory: (pats, cnts, lens, jobs)."""
    size = 1 << buf.bits
    cap = int(np.minimum(stops - starts, size).sum())
    pats, cnts, lens = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(starts.size, np.int64)
    k.count_pieces(buf.x, buf.w, buf.head, buf.use_words, starts, stops, _thread_table(buf.bits), pats, cnts, lens)
    return pats, cnts, lens, span_jobs


def _count_read(k, buf: _Buffer, fd: int, starts: np.ndarray, stops: np.ndarray, span_jobs: list[int]):
    """One span counted from its file through this thread's read buffer: (pats, cnts, lens, jobs)."""
    size = 1 << buf.bits
    isz = buf.bits // 8
    cap = int(np.minimum(stops - starts, size).sum())
    pats, cnts, lens = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(starts.size, np.int64)
    if k.read_count_pieces(_pread(), fd, _thread_buffer(), isz == 2, buf.file_base + starts * isz, stops - starts,
                           _thread_table(buf.bits), pats, cnts, lens) < 0:
        raise UserError(f"cannot read {buf.path}: the file is shorter than its header says (was it changed while open?)")
    return pats, cnts, lens, span_jobs


@functools.cache
def _pread():
    """libc's pread through ctypes (what the read kernel calls), or None where there is none (Windows)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None).pread
    except (AttributeError, OSError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
    fn.restype = ctypes.c_ssize_t
    return fn


def _mapped_in(x: np.ndarray, ranges: list[tuple[int, int]], samples: int = 16) -> bool:
    """Whether the pages of x[lo:hi] over `ranges` are mostly mapped into this process already (a sample
    of their pages, looked up in /proc/self/pagemap: bit 63 = present). False where that cannot be told."""
    total = sum(hi - lo for lo, hi in ranges)
    if not total:
        return False
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return False
    base = x.__array_interface__["data"][0]
    page = mmap.PAGESIZE
    present = 0
    try:
        targets = iter(sorted((2 * i + 1) * total // (2 * samples) for i in range(samples)))
        want = next(targets, None)
        done = 0
        for lo, hi in ranges:
            while want is not None and want < done + hi - lo:
                addr = base + (lo + want - done) * x.itemsize
                entry = os.pread(fd, 8, addr // page * 8)
                present += len(entry) == 8 and int.from_bytes(entry, "little") >> 63
                want = next(targets, None)
            done += hi - lo
    except OSError:
        return False
    finally:
        os.close(fd)
    return present * 2 > samples


#: Below this many bytes to count in one file, a fresh map is read as usual (the check costs a few ms).
CHEAP_MAP_MIN_BYTES = 64 << 20
_CHEAP_MAPS: dict[tuple[str, int], bool] = {}


def _maps_cheaply(buf: _Buffer, elements: int) -> bool:
    """Whether buf's file is cached in 2 MiB folios, so that counting its map costs less than reading it
    (`internals.stats.page_cache`); asked once per file and map in a process, only for large counts."""
    if elements * buf.bits // 8 < CHEAP_MAP_MIN_BYTES or buf.path is None:
        return False
    key = (buf.path, int(np.asarray(buf.owner).__array_interface__["data"][0]))  # one file's map, any view
    if key not in _CHEAP_MAPS:
        from internals.stats.page_cache import maps_cheaply

        _CHEAP_MAPS[key] = maps_cheaply(buf.x)
    return _CHEAP_MAPS[key]


@dataclass
class _Buffer:
    """One memory region counted as one array: x (uint8/uint16 elements), and for 16-bit data at an even
    address the uint64 words of the same memory from element `head` on (x[head] is 8-byte aligned)."""

    owner: np.ndarray  # the array whose memory this is (kept alive while its id keys the plan)
    bits: int
    x: np.ndarray
    w: np.ndarray
    head: int
    use_words: bool
    path: str | None  # a read-only memory map's file: read through it (x[0] is at byte file_base)
    file_base: int

    @staticmethod
    def locate(typed: np.ndarray, plans: dict[tuple[int, int, int], _Buffer]) -> tuple[_Buffer, int]:
        """The buffer holding `typed` (the whole array it is a view of, e.g. a file's memory map, when that
        is contiguous; else `typed` itself) and the element index where `typed` starts in it."""
        itemsize = typed.itemsize
        addr = typed.__array_interface__["data"][0]
        owner = typed
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        region = np.asarray(owner)
        start = region.__array_interface__["data"][0]
        if not region.flags.c_contiguous or not start <= addr <= addr + typed.nbytes <= start + region.nbytes:
            owner = region = typed
            start = addr
        x0 = start + (addr - start) % itemsize  # the elements of x line up with the tensor's
        key = (id(owner), x0, itemsize)
        buf = plans.get(key)
        if buf is None:
            region8 = region.reshape(-1).view(np.uint8)[x0 - start:]
            x = region8[:region8.size // itemsize * itemsize].view("<u2" if itemsize == 2 else np.uint8)
            head = ((-x0) % 8) // 2
            nwords = (x.size - head) // 4 if itemsize == 2 and x0 % 2 == 0 and x.size > head else 0
            w = region8[2 * head:2 * head + 8 * nwords].view(np.uint64) if nwords else np.zeros(0, np.uint64)
            x.flags.writeable = w.flags.writeable = False  # one compiled specialisation for maps and arrays
            path, file_base = None, 0
            if isinstance(owner, np.memmap) and owner.mode == "r" and owner.filename and _pread() is not None:
                path, file_base = str(owner.filename), int(owner.offset) + x0 - start
            buf = plans[key] = _Buffer(owner, itemsize * 8, x, w, head if nwords else 0, nwords > 0, path, file_base)
        return buf, (addr - x0) // itemsize


def _spans(pieces: list[tuple[_Buffer, int, int, int]], span: int):
    """Cut the pieces (in order) into spans of about `span` elements, each within one buffer:
    [(buffer, starts int64[], stops int64[], jobs list), ...]. A piece that fits a span but not the room
    left in a span at least half full starts the next one (fewer tensors cut in two: their counts must
    be added up after)."""
    out = []
    cur: tuple[_Buffer, list[int], list[int], list[int]] | None = None
    room = 0
    for buf, j, lo, hi in pieces:
        while lo < hi:
            if cur is None or cur[0] is not buf or room == 0 or (hi - lo > room and hi - lo <= span and room < span // 2):
                if cur is not None and cur[1]:
                    out.append(cur)
                cur, room = (buf, [], [], []), span
            take = min(hi - lo, room)
            cur[1].append(lo)
            cur[2].append(lo + take)
            cur[3].append(j)
            lo += take
            room -= take
    if cur is not None and cur[1]:
        out.append(cur)
    return [(b, np.array(st, np.int64), np.array(sp, np.int64), js) for b, st, sp, js in out]


def _add_sparse(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse counts of the pieces of one tensor added: (patterns each once, their counts); `size`: patterns
    of the dtype. (The float64 sums are exact: a tensor has far fewer than 2**53 elements.)"""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(parts) == 1:
        return parts[0]
    dense = np.bincount(np.concatenate([p for p, _ in parts]), weights=np.concatenate([c for _, c in parts]),
                        minlength=size)
    pats = np.flatnonzero(dense)
    return pats, dense[pats].astype(np.int64)


def compute_tensor_stats(raw: Any, dtype: str, shape: tuple[int, ...], bins: int = 64, name: str = "", *,
                         chunk_elements: int | None = None) -> TensorStats:
    """Exact statistics of one tensor from its raw little-endian bytes (no sampling).

    raw: 1-D uint8 buffer (numpy array, memoryview, bytes, or a view into a safetensors memory map).
    dtype: safetensors code ("BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2", "I8", "U8", "I16", "U16",
    "I32", "U32", "I64", "U64", "BOOL") or a torch-style name ("bfloat16").
    chunk_elements: elements per chunk of the multi-pass kernels (tests use small values).
    Raises `UserError` for an unsupported dtype or a byte count that does not match the shape.
    """
    bins = _check_bins(bins)
    info = dtype_info(dtype)
    shape = tuple(int(s) for s in shape)
    if info.pattern_bits:
        return count_patterns(raw, info.code, shape, name, chunk_elements=chunk_elements).stats(bins)
    typed, numel = _typed_view(raw, info, shape)
    return _wide_stats(typed, info, shape, numel, bins, name, chunk_elements)


def tensor_histogram(raw: Any, dtype: str, shape: tuple[int, ...], bins: int = 64,
                     range: tuple[float, float] | None = None, *,
                     chunk_elements: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """numpy.histogram of a tensor's finite values over `range` (default [min, max]): (edges, counts).

    For 8/16-bit dtypes this is one counting pass (keep the `PatternCounts` to re-bin for free); for
    wider dtypes one pass when `range` is given, two otherwise.
    """
    bins = _check_bins(bins)
    info = dtype_info(dtype)
    shape = tuple(int(s) for s in shape)
    if info.pattern_bits:
        return count_patterns(raw, info.code, shape, chunk_elements=chunk_elements).histogram(bins, range)
    typed, numel = _typed_view(raw, info, shape)
    if numel == 0:
        return histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins, range)
    passes = _WidePasses(typed, info, chunk_elements)
    if range is None:
        (nfin, *_), _, mn, mx, _ = passes.pass1()
        if nfin == 0:
            return histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
        range = (mn, mx)
    edges, first, last = histogram_edges(range[0], range[1], bins)
    _, hist, _ = passes.pass2(moments=False, mean=0.0, edges=edges, first=first, last=last, bins=bins)
    return edges, hist


# --------------------------------------------------------------------------------------------------
# F32 / F64 / wide integers: chunked passes


class _WidePasses:
    """Runs the block kernels over a tensor; integers are converted to float64 block by block."""

    def __init__(self, typed: np.ndarray, info: DtypeInfo, chunk_elements: int | None) -> None:
        self.k = _kernels()
        self.typed = typed
        self.info = info
        self.n = typed.size
        self.block = _block_size(self.n, chunk_elements)
        self.is_float = info.kind == "float"
        self.nbits = int(info.itemsize * 8) if self.is_float else 64
        self.bits_dtype = np.uint32 if self.nbits == 32 else np.uint64

    def _views(self, state: dict, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(float view, bits view) of one block."""
        part = _block_view(self.typed, lo, hi)
        if self.is_float:
            return part, part.view(self.bits_dtype)
        buf = state.get("buf")
        if buf is None:
            buf = state["buf"] = np.empty(min(self.block, self.n), np.float64)
        x = buf[: hi - lo]
        np.copyto(x, part, casting="unsafe")
        return x, x.view(np.uint64)

    def pass1(self):
        nblocks = -(-self.n // self.block)
        partial = np.zeros((nblocks, 9), np.float64)
        k = self.k

        def work(st: dict, i: int, lo: int, hi: int) -> None:
            x, u = self._views(st, lo, hi)
            partial[i] = k.pass1_block(x, u, self.nbits, st["top"].reserve(hi - lo))

        states = _run_blocks(self.n, self.block, lambda: {"top": _Counts32(65536)}, work)
        top = np.zeros(65536, np.int64)
        for st in states:
            top += st["top"].flush()
        counts = [int(c) for c in partial[:, :4].sum(axis=0)]  # exact: each below 2**53
        sums = [math.fsum(partial[:, j]) for j in (4, 5, 6)]  # exact sum of the block partials
        return counts, sums, float(partial[:, 7].min()), float(partial[:, 8].max()), top

    def pass2(self, *, moments: bool, mean: float, edges=None, first=0.0, last=0.0, bins=0,
              prefix_shift=0, digit_shift=0, table16=None, slot_top=None, slot_prefix=None):
        """Returns (central sums [d, d^2, d^4], histogram int64[bins], refine int64[slots, 65536])."""
        nblocks = -(-self.n // self.block)
        partial = np.zeros((nblocks, 3), np.float64)
        if slot_prefix is None:
            table16 = np.full(65536, -1, np.int32)
            slot_top = slot_prefix = np.zeros(0, np.uint64)
        if edges is None:
            edges = np.zeros(1, np.float64)
        nslots = slot_prefix.size
        denom = float(last) - float(first)
        k = self.k

        def make_state() -> dict:
            return {"hist": np.zeros(bins, np.int64), "refine": np.zeros((nslots, 65536), np.int64)}

        def work(st: dict, i: int, lo: int, hi: int) -> None:
            x, u = self._views(st, lo, hi)
            partial[i] = k.pass2_block(x, u, self.nbits, moments, float(mean), float(first), float(last), denom,
                                       edges, st["hist"], int(prefix_shift), int(digit_shift), table16,
                                       slot_top, slot_prefix, st["refine"])

        states = _run_blocks(self.n, self.block, make_state, work)
        hist = sum(st["hist"] for st in states)
        refine = sum(st["refine"] for st in states)
        central = [math.fsum(partial[:, j]) for j in range(3)]
        return central, hist, refine

    def decode_key(self, key: int) -> float:
        sign = 1 << (self.nbits - 1)
        ones = (1 << self.nbits) - 1
        bits = key ^ sign if key & sign else key ^ ones
        if self.nbits == 32:
            return float(np.array([bits], np.uint32).view(np.float32)[0])
        return float(np.array([bits], np.uint64).view(np.float64)[0])


def _radix_slots(prefixes: list[int], prefix_bits: int):
    """Sorted unique prefixes with the lookup tables the kernel wants."""
    uniq = sorted(set(prefixes))
    slot_prefix = np.array(uniq, dtype=np.uint64)
    slot_top = (slot_prefix >> np.uint64(prefix_bits - 16)).astype(np.uint64)
    table16 = np.full(65536, -1, np.int32)
    for j in range(len(uniq) - 1, -1, -1):
        table16[int(slot_top[j])] = j
    return uniq, slot_prefix, slot_top, table16


def _select(counts: np.ndarray, rank: int) -> tuple[int, int]:
    """(digit, rank within that digit's bucket) of the element of 0-based `rank` given digit counts."""
    cum = np.cumsum(counts)
    d = int(np.searchsorted(cum, rank, side="right"))
    before = int(cum[d - 1]) if d > 0 else 0
    return d, rank - before


def _wide_stats(typed: np.ndarray, info: DtypeInfo, shape, numel: int, bins: int, name: str,
                chunk_elements: int | None) -> TensorStats:
    if numel == 0:
        edges, empty_hist = histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
        return _empty_stats(name, shape, info, numel, 0, 0, edges, empty_hist)
    p = _WidePasses(typed, info, chunk_elements)
    (nfin, nan, inf, zeros), (s1, sa, sq), mn, mx, top = p.pass1()
    if nfin == 0:
        edges, empty_hist = histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
        return _empty_stats(name, shape, info, numel, nan, inf, edges, empty_hist)
    mean = mn if mn == mx else s1 / nfin  # a constant tensor: exact mean, std 0

    # exact order statistics by radix select, 16 key bits per level (32-bit keys: 2 levels, 64-bit: 4);
    # level 0 comes from pass 1, level 1 rides along with pass 2 (moments and histogram)
    ranks = _quantile_ranks(nfin)
    wanted = sorted({r for _, a, b, _ in ranks for r in (a, b)})
    state = {r: _select(top, r) for r in wanted}  # rank -> (key prefix, rank within that prefix)
    edges, first, last = histogram_edges(mn, mx, bins)
    hist: np.ndarray | None = None
    central: list[float] | None = None
    for level in range(1, p.nbits // 16):
        prefix_bits = 16 * level
        uniq, slot_prefix, slot_top, table16 = _radix_slots([state[r][0] for r in wanted], prefix_bits)
        first_level = level == 1
        c, h, refine = p.pass2(moments=first_level, mean=mean, edges=edges if first_level else None,
                               first=first, last=last, bins=bins if first_level else 0,
                               prefix_shift=p.nbits - prefix_bits, digit_shift=p.nbits - prefix_bits - 16,
                               table16=table16, slot_top=slot_top, slot_prefix=slot_prefix)
        if first_level:
            central, hist = c, h
        slot_of = {pre: j for j, pre in enumerate(uniq)}
        for r in wanted:
            pre, within = state[r]
            d, within = _select(refine[slot_of[pre]], within)
            state[r] = ((pre << 16) | d, within)
    value = {r: p.decode_key(state[r][0]) for r in wanted}
    quantiles: dict[str, float | None] = {key: _lerp(value[a], value[b], g) for key, a, b, g in ranks}
    if central is None or hist is None:
        raise RuntimeError(f"{p.nbits}-bit keys need at least two radix levels")

    c1, c2, c4 = central
    m2 = 0.0 if mn == mx else max(0.0, (c2 - c1 * c1 / nfin) / nfin)
    m4 = c4 / nfin
    return TensorStats(
        name=name, shape=tuple(shape), dtype=info.name, numel=numel,
        mean=mean, std=math.sqrt(m2), min=mn, max=mx, abs_mean=sa / nfin, rms=math.sqrt(sq / nfin),
        l2_norm=math.sqrt(sq), zeros=zeros, nan=nan, inf=inf, quantiles=quantiles,
        kurtosis=(m4 / (m2 * m2) - 3.0) if m2 > 0 else None,
        histogram_edges=edges.tolist(), histogram_counts=hist.tolist(),
    )
