"""Exact per-tensor statistics (see the package docstring for the method and the public API)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from internals.errors import UserError
from internals.stats._dtypes import DtypeInfo, dtype_info, pattern_tables

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99),
)
#: Elements per chunk for the multi-pass kernels (F32/F64/integers); bounds the extra memory.
CHUNK_ELEMENTS = 16 * 1024 * 1024
#: Integers wider than 16 bits are converted to float64 in chunks of at most this many elements.
INT_CHUNK_ELEMENTS = 4 * 1024 * 1024

# Parallel kernels run one at a time: numba's fallback threading layer ("workqueue") aborts the process
# on concurrent launches from two Python threads, and each kernel already uses every numba thread.
_KERNEL_LOCK = threading.Lock()


def _kernels():
    from internals.stats import _kernels as k  # lazy: importing numba costs ~0.5 s

    return k


def _threads() -> int:
    import numba

    return max(1, int(numba.get_num_threads()))  # NUMBA_NUM_THREADS / numba.set_num_threads


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
    shape: tuple[int, ...] = ()
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
        bins = _check_bins(bins)
        t = self._tables
        counts = self.counts
        numel = int(counts.sum())
        nan = int(counts[t.nan_patterns].sum())
        inf = int(counts[t.inf_patterns].sum())
        zeros = int(counts[t.zero_patterns].sum())
        vals, cnt = self.sorted_finite()
        n = int(cnt.sum())
        shape = tuple(self.shape) if self.shape else (numel,)
        if n == 0:
            edges, hist = histogram_from_counts(vals, cnt, bins)
            return _empty_stats(self.name, shape, self._info, numel, nan, inf, edges, hist)
        w = cnt.astype(np.float64)
        # bf16/f16 values times counts below 2**40 are exact float64 products; sums are pairwise
        s1 = float(np.sum(w * vals))
        sa = float(np.sum(w * np.abs(vals)))
        sq = float(np.sum(w * vals * vals))
        mean = s1 / n
        d = vals - mean
        d2 = d * d
        m2 = float(np.sum(w * d2)) / n
        m4 = float(np.sum(w * d2 * d2)) / n
        cum = np.cumsum(cnt)
        quantiles = {}
        for key, prev, nxt, gamma in _quantile_ranks(n):
            a, b = vals[np.searchsorted(cum, [prev, nxt], side="right")]
            quantiles[key] = _lerp(float(a), float(b), gamma)
        edges, hist = histogram_from_counts(vals, cnt, bins)
        return TensorStats(
            name=self.name, shape=shape, dtype=self._info.name, numel=numel,
            mean=mean, std=math.sqrt(m2), min=float(vals[0]), max=float(vals[-1]),
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
    if a.size != numel * info.itemsize:
        raise UserError(
            f"tensor data has {a.size} bytes but {info.code} {list(shape)} needs {numel * info.itemsize}")
    np_dtype = {
        "BF16": "<u2", "F16": "<u2", "I16": "<u2", "U16": "<u2",
        "F8_E4M3": "u1", "F8_E5M2": "u1", "I8": "u1", "U8": "u1", "BOOL": "u1",
        "F32": "<f4", "F64": "<f8", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8",
    }[info.code]
    typed = a.view(np_dtype)
    typed.flags.writeable = False  # one compiled specialisation for memory maps and arrays alike
    return typed, numel


def _chunks(x: np.ndarray, chunk: int):
    """Contiguous views of at most `chunk` elements; unaligned data is copied chunk by chunk."""
    aligned = x.flags.aligned
    for lo in range(0, x.size, chunk):
        part = x[lo:lo + chunk]
        if not aligned:
            part = np.array(part)  # aligned copy, bounded by the chunk
            part.flags.writeable = False
        yield part


def _chunk_size(chunk_elements: int | None, nt: int) -> int:
    c = CHUNK_ELEMENTS if chunk_elements is None else int(chunk_elements)
    if c < 1:
        raise ValueError("chunk_elements must be positive")
    return min(c, nt * (2**31))  # per-thread uint32 counters never overflow


# --------------------------------------------------------------------------------------------------
# public entry points


def count_patterns(raw: Any, dtype: str, shape: tuple[int, ...] | None = None, name: str = "", *,
                   chunk_elements: int | None = None) -> PatternCounts:
    """Count every bit pattern of an 8/16-bit tensor (BF16, F16, F8_*, I8, U8, I16, U16, BOOL) in one pass."""
    info = dtype_info(dtype)
    if not info.pattern_bits:
        raise UserError(f"dtype {info.code} has no pattern counts (only 8- and 16-bit dtypes)")
    if shape is None:
        shape = (_as_bytes(raw).size // info.itemsize,)
    typed, _ = _typed_view(raw, info, tuple(shape))
    total = np.zeros(1 << info.pattern_bits, np.int64)
    if typed.size:
        k = _kernels()
        nt = _threads()
        chunk = _chunk_size(chunk_elements, nt)
        with _KERNEL_LOCK:
            for part in _chunks(typed, chunk):
                k.count_patterns(part, total, nt)
    return PatternCounts(info.code, total, tuple(int(s) for s in shape), name)


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
    if range is None:
        st = _wide_stats(typed, info, shape, numel, bins, "", chunk_elements)
        return np.asarray(st.histogram_edges), np.asarray(st.histogram_counts, np.int64)
    edges, first, last = histogram_edges(range[0], range[1], bins)
    hist = np.zeros(bins, np.int64)
    _WidePasses(typed, info, chunk_elements).pass2(
        moments=False, mean=0.0, edges=edges, first=first, last=last, hist=hist)
    return edges, hist


# --------------------------------------------------------------------------------------------------
# F32 / F64 / wide integers: chunked passes


class _WidePasses:
    """Runs the chunked kernels over a tensor; integers are converted to float64 chunk by chunk."""

    def __init__(self, typed: np.ndarray, info: DtypeInfo, chunk_elements: int | None) -> None:
        self.k = _kernels()
        self.nt = _threads()
        self.typed = typed
        self.info = info
        chunk = _chunk_size(chunk_elements, self.nt)
        if info.kind != "float":
            chunk = min(chunk, INT_CHUNK_ELEMENTS) if chunk_elements is None else chunk
            self.nbits = 64
        else:
            self.nbits = info.itemsize * 8
        self.chunk = chunk
        self.empty_i32 = np.full(65536, -1, np.int32)
        self.empty_u64 = np.zeros(0, np.uint64)
        self.empty_ref = np.zeros((0, 65536), np.int64)

    def parts(self):
        """(float view, bits view) per chunk."""
        if self.info.kind == "float":
            bits = np.uint32 if self.nbits == 32 else np.uint64
            for part in _chunks(self.typed, self.chunk):
                yield part, part.view(bits)
        else:
            buf = np.empty(min(self.chunk, self.typed.size), np.float64)
            for part in _chunks(self.typed, self.chunk):
                x = buf[:part.size]
                np.copyto(x, part, casting="unsafe")
                yield x, x.view(np.uint64)

    def pass1(self):
        counts = np.zeros(4, np.int64)
        sums = np.zeros(8, np.float64)
        sums[3], sums[4] = np.inf, -np.inf
        top = np.zeros(65536, np.int64)
        with _KERNEL_LOCK:
            for x, u in self.parts():
                self.k.float_pass1(x, u, self.nbits, self.nt, counts, sums, top)
        return counts, sums, top

    def pass2(self, *, moments: bool, mean: float, edges=None, first=0.0, last=0.0, hist=None,
              prefix_shift=0, digit_shift=0, table16=None, slot_top=None, slot_prefix=None, refine=None):
        central = np.zeros(6, np.float64)
        if hist is None:
            hist = np.zeros(0, np.int64)
            edges = np.zeros(1, np.float64)
        denom = last - first
        if slot_prefix is None:
            table16, slot_top, slot_prefix, refine = self.empty_i32, self.empty_u64, self.empty_u64, self.empty_ref
        with _KERNEL_LOCK:
            for x, u in self.parts():
                self.k.float_pass2(x, u, self.nbits, self.nt, moments, float(mean), float(first), float(last),
                                   float(denom), edges, hist, central, int(prefix_shift), int(digit_shift),
                                   table16, slot_top, slot_prefix, refine)
        return central

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
    p = _WidePasses(typed, info, chunk_elements)
    counts, sums, top = p.pass1()
    nfin, nan, inf, zeros = (int(c) for c in counts)
    if nfin == 0:
        edges, hist = histogram_from_counts(np.zeros(0), np.zeros(0, np.int64), bins)
        return _empty_stats(name, shape, info, numel, nan, inf, edges, hist)
    s1 = sums[0] + sums[5]
    sa = sums[1] + sums[6]
    sq = sums[2] + sums[7]
    mn, mx = float(sums[3]), float(sums[4])
    mean = mn if mn == mx else s1 / nfin  # a constant tensor: exact mean, std 0

    # exact order statistics: radix select, 16 key bits per level (F32: 2 levels, 64-bit: 4)
    ranks = _quantile_ranks(nfin)
    wanted = sorted({r for _, a, b, _ in ranks for r in (a, b)})
    state = {r: _select(top, r) for r in wanted}  # rank -> (key prefix, rank within prefix)
    levels = p.nbits // 16
    edges, first, last = histogram_edges(mn, mx, bins)
    hist = np.zeros(bins, np.int64)
    central = None
    for level in range(1, levels):
        prefix_bits = 16 * level
        uniq, slot_prefix, slot_top, table16 = _radix_slots([state[r][0] for r in wanted], prefix_bits)
        refine = np.zeros((len(uniq), 65536), np.int64)
        first_level = level == 1
        c = p.pass2(moments=first_level, mean=mean, edges=edges if first_level else None, first=first,
                    last=last, hist=hist if first_level else None,
                    prefix_shift=p.nbits - prefix_bits, digit_shift=p.nbits - prefix_bits - 16,
                    table16=table16, slot_top=slot_top, slot_prefix=slot_prefix, refine=refine)
        if first_level:
            central = c
        slot_of = {pre: j for j, pre in enumerate(uniq)}
        for r in wanted:
            pre, within = state[r]
            d, within = _select(refine[slot_of[pre]], within)
            state[r] = ((pre << 16) | d, within)
    value = {r: p.decode_key(state[r][0]) for r in wanted}
    quantiles = {key: _lerp(value[a], value[b], g) for key, a, b, g in ranks}

    c1 = central[0] + central[3]
    c2 = central[1] + central[4]
    c4 = central[2] + central[5]
    m2 = max(0.0, (c2 - c1 * c1 / nfin) / nfin)
    m4 = c4 / nfin
    if mn == mx:
        m2 = 0.0
    return TensorStats(
        name=name, shape=tuple(shape), dtype=info.name, numel=numel,
        mean=mean, std=math.sqrt(m2), min=mn, max=mx, abs_mean=sa / nfin, rms=math.sqrt(sq / nfin),
        l2_norm=math.sqrt(sq), zeros=zeros, nan=nan, inf=inf, quantiles=quantiles,
        kurtosis=(m4 / (m2 * m2) - 3.0) if m2 > 0 else None,
        histogram_edges=edges.tolist(), histogram_counts=hist.tolist(),
    )
