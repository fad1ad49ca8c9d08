"""Exact per-tensor statistics (see the package docstring for the method and the public API)."""

from __future__ import annotations

import itertools
import math
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


def _kernels():
    if "numba" not in sys.modules:
        _import_numba_without_scipy()
    from internals.stats import _kernels as k  # lazy: importing numba costs ~0.3 s

    return k


def _import_numba_without_scipy() -> None:
    """Import numba without its start-up probe of scipy's BLAS (`numba.np.arraymath` imports
    scipy.linalg to offer np.linalg inside jitted code, which these kernels never use): that probe
    alone is 0.2-0.6 s of every `stats` command. A process that already imported scipy keeps it."""
    probe = "scipy.linalg.cython_blas"
    blocked = probe not in sys.modules
    if blocked:
        sys.modules[probe] = None  # type: ignore[assignment]  # `import` of it now fails at once
    try:
        import numba  # noqa: F401
    finally:
        if blocked and sys.modules.get(probe, 0) is None:
            del sys.modules[probe]


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

    def flush_into(self, total: np.ndarray) -> None:
        """Add the table to `total` (int64) and clear it."""
        if self.pending:
            total += self.c32
            self.c32[:] = 0
            self.pending = 0

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


@dataclass
class PatternCounts:
    """Counts of every bit pattern of an 8- or 16-bit tensor: everything else derives from these exactly.

    `counts[p]` is the number of elements whose raw little-endian bits equal `p` (int64, 256 or 65,536
    entries, so 0.5 MB at most). Keep one per tensor to re-bin or re-query without reading the tensor
    again: `stats(bins)` builds a full `TensorStats`, `histogram(bins, range)` re-bins any range (e.g. a
    zoom of the explorer), `quantile(q)` gives any quantile. Counts of several tensors of one dtype add
    up (`a + b`) to the statistics of their union.
    """

    dtype: str  # safetensors code
    counts: np.ndarray
    shape: tuple[int, ...] | None = None  # None: 1-D of numel
    name: str = ""

    def __post_init__(self) -> None:
        self._info = dtype_info(self.dtype)
        self.dtype = self._info.code
        self._tables = pattern_tables(self.dtype)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.counts.shape != self._tables.values.shape:
            raise ValueError(f"{self.dtype} needs {self._tables.values.size} counts, got {self.counts.shape}")

    def __add__(self, other: PatternCounts) -> PatternCounts:
        if other.dtype != self.dtype:
            raise ValueError(f"cannot add {self.dtype} and {other.dtype} pattern counts")
        return PatternCounts(self.dtype, self.counts + other.counts, (int(self.numel + other.numel),), self.name)

    @property
    def numel(self) -> int:
        return int(self.counts.sum())

    @property
    def values(self) -> np.ndarray:
        """float64 value of every pattern (NaN for NaN patterns)."""
        return self._tables.values

    def sorted_finite(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct finite values ascending, their counts), patterns with a zero count left out."""
        c = self.counts[self._tables.finite_order]
        nz = np.flatnonzero(c)
        return self._tables.finite_sorted[nz], c[nz]

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
        """Every statistic of `TensorStats`, derived exactly from the counts (about 0.1 ms)."""
        bins = _check_bins(bins)
        t = self._tables
        counts = self.counts
        numel = int(counts.sum())
        nan = int(counts[t.nan_patterns].sum())
        inf = int(counts[t.inf_patterns].sum())
        zeros = int(counts[t.zero_patterns].sum())
        shape = tuple(self.shape) if self.shape is not None else (numel,)
        n = numel - nan - inf
        if n == 0:
            edges, hist = histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
            return _empty_stats(self.name, shape, self._info, numel, nan, inf, edges, hist)
        # distinct finite patterns by value (min and max give the histogram range), then one sweep
        k = _kernels()
        buf = np.empty(t.finite_order.size, np.int64)
        pats = buf[:k.nonzero_in_order(counts, t.finite_order, buf)]
        mn, mx = float(t.values[pats[0]]), float(t.values[pats[-1]])
        edges, first, last = histogram_edges(mn, mx, bins)
        hist = np.zeros(bins, np.int64)
        qranks = _quantile_ranks(n)
        ranks = np.array(sorted({r for _, a, b, _ in qranks for r in (a, b)}), np.int64)
        ranked = np.zeros(ranks.size, np.float64)
        _n, s1, sa, sq, s2, s4 = k.summarize_counts(counts, pats, t.values, ranks, edges, first, last, hist, ranked)
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


def _count_block(k, part: np.ndarray, table: np.ndarray) -> None:
    """Count one block; 16-bit data is read as aligned uint64 words (four patterns each) where possible."""
    if part.itemsize == 2 and part.size >= 64:
        head = (-(part.ctypes.data >> 1)) % 4  # elements up to the next 8-byte boundary (data is 2-aligned)
        body = (part.size - head) // 4 * 4
        k.count_block(part[:head], table)
        k.count_block_words(part[head:head + body].view(np.uint64), table)
        k.count_block(part[head + body:], table)
    else:
        k.count_block(part, table)


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
    info = dtype_info(dtype)
    if not info.pattern_bits:
        raise UserError(f"dtype {info.code} has no pattern counts (only 8- and 16-bit dtypes)")
    if shape is None:
        shape = (_as_bytes(raw).size // int(info.itemsize),)
    typed, _ = _typed_view(raw, info, tuple(shape))
    size = 1 << info.pattern_bits
    total = np.zeros(size, np.int64)
    n = typed.size
    block = _block_size(n, chunk_elements)
    if 0 < n <= block:  # one block: count straight into the int64 table on this thread
        _count_block(_kernels(), _block_view(typed, 0, n), total)
    elif n:
        k = _kernels()

        def work(st: _Counts32, _i: int, lo: int, hi: int) -> None:
            _count_block(k, _block_view(typed, lo, hi), st.reserve(hi - lo))

        for st in _run_blocks(n, block, lambda: _Counts32(size), work):
            total += st.flush()
    return PatternCounts(info.code, total, tuple(int(s) for s in shape), name)


def count_patterns_many(items: list[tuple[Any, str, tuple[int, ...], str]], *,
                        chunk_elements: int | None = None) -> list[PatternCounts]:
    """`count_patterns` of many tensors [(raw, dtype, shape, name), ...] in one scheduling pass.

    The blocks of all tensors go to the worker threads from one shared counter, so threads never wait for
    each other at tensor boundaries (a per-tensor barrier costs most on the many small tensors of a
    model); each worker counts into its own uint32 table and adds it to a tensor's total when it moves
    on to another tensor. Same counts as `count_patterns` on each.
    """
    jobs = []
    for raw, dtype, shape, name in items:
        info = dtype_info(dtype)
        if not info.pattern_bits:
            raise UserError(f"dtype {info.code} has no pattern counts (only 8- and 16-bit dtypes)")
        if shape is None:
            shape = (_as_bytes(raw).size // int(info.itemsize),)
        typed, _ = _typed_view(raw, info, tuple(shape))
        jobs.append((info, typed, tuple(int(s) for s in shape), name))
    totals = [np.zeros(1 << info.pattern_bits, np.int64) for info, *_ in jobs]
    blocks: list[tuple[int, int, int]] = []  # (job, lo, hi), tensors in order
    for j, (_info, typed, _shape, _name) in enumerate(jobs):
        n = typed.size
        block = _block_size(n, chunk_elements)
        blocks.extend((j, lo, min(n, lo + block)) for lo in range(0, n, block))
    if blocks:
        k = _kernels()
        locks = [threading.Lock() for _ in jobs]

        def make_state() -> dict:
            return {"job": -1, "tables": {}}

        def settle(st: dict) -> None:
            j = st["job"]
            if j >= 0:
                table = st["tables"][jobs[j][0].pattern_bits]
                with locks[j]:
                    table.flush_into(totals[j])

        def work(st: dict, i: int, _lo: int, _hi: int) -> None:
            j, lo, hi = blocks[i]
            if j != st["job"]:
                settle(st)
                st["job"] = j
            bits = jobs[j][0].pattern_bits
            table = st["tables"].get(bits)
            if table is None:
                table = st["tables"][bits] = _Counts32(1 << bits)
            if table.pending + (hi - lo) > 0xFFFFFFFF:
                with locks[j]:
                    table.flush_into(totals[j])
            table.pending += hi - lo
            _count_block(k, _block_view(jobs[j][1], lo, hi), table.c32)

        for st in _run_blocks(len(blocks), 1, make_state, work):
            settle(st)
    return [PatternCounts(info.code, total, shape, name) for (info, _t, shape, name), total in zip(jobs, totals)]


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
