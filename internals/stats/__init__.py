"""Exact per-tensor statistics from raw safetensors bytes (numpy + numba; no torch at import).

Public API
----------
- `compute_tensor_stats(raw, dtype, shape, bins=64, name="") -> TensorStats`; `TensorStats.to_dict()` is
  the "Tensor statistics" JSON item of docs/contracts.md.
- `count_patterns(raw, dtype, shape=None, name="") -> PatternCounts` for 8/16-bit dtypes; a
  `PatternCounts` re-derives `stats(bins)`, `histogram(bins, range)` and `quantile(q)` exactly without
  reading the tensor again (keep it to re-bin cheaply in the explorer).
- `count_patterns_many([(raw, dtype, shape, name), ...])`: the same for many tensors in one scheduling
  pass (threads never wait at tensor boundaries): whole-model statistics.
- `tensor_histogram(raw, dtype, shape, bins=64, range=None) -> (edges, counts)` for any dtype.
- `histogram_from_counts(values, counts, bins=64, range=None)`: numpy.histogram of a weighted multiset.
- `readable_dtype("BF16") -> "bfloat16"`; `naive_stats(...)`: the torch baseline (benchmark only).
- `threads()` / `set_threads(n)`: worker threads per tensor (default NUMBA_NUM_THREADS or the CPUs).

Method (exact, no sampling)
---------------------------
- 8/16-bit dtypes (BF16, F16, F8_E4M3, F8_E5M2, I8, U8, I16, U16, BOOL): one parallel integer pass counts
  every bit pattern. All tensors of a call that are views of one buffer (a file's memory map) are counted
  as ranges of it, cut into equal spans that the threads take in turn (one kernel call per span); each
  thread counts into the one uint32 table it keeps and writes each tensor's non-zero counts out sparse.
  A read-only map whose pages this process has not mapped yet is counted by reading the file into each
  thread's small buffer (cheaper than mapping the pages). Every moment (float64 over pattern value x
  count), every quantile (order statistics from cumulative counts + numpy's linear interpolation) and any
  histogram derive from the counts of the patterns that occur, in value order.
- F32/F64 (and I32/U32/I64/U64, converted to float64 chunk by chunk): pass 1 gives counts, sum, sum|x|,
  sum x^2, min, max and the counts of the top 16 bits of each value's order-preserving key; pass 2 (mean
  known) gives the central moments, the histogram over [min, max] and the next 16 key bits inside the
  buckets that hold the wanted order statistics (radix select), so F32 quantiles are exact in two
  passes (64-bit types take two more refinement passes). Extra memory is bounded by per-thread tables
  (and, for integers, one float64 block per thread), never by the tensor.

Conventions: population std; excess kurtosis (None when std is 0); moments, quantiles and histogram over
finite values; numpy.histogram's bins (equal width over [min, max], last bin closed, a constant tensor
gets [v - 0.5, v + 0.5]); -0.0 counts as a zero; undefined values are None; all output floats finite.

Threads: NUMBA_NUM_THREADS worker threads (default: numba's, the usable CPUs) take units of work (spans of
pattern data; blocks of `CHUNK_ELEMENTS`, at least `MIN_BLOCK_ELEMENTS`, of wider data, unless the caller
passes `chunk_elements`) from a shared counter, each running serial `nogil` numba kernels into its own
tables; counts are exact whatever the split, and floating-point partial sums are combined per block with
`math.fsum`, so results do not depend on scheduling. Kernels are compiled on first use (a few seconds) and cached next to the
source (or per process when no cache location is writable). Safe to call from several threads at once.
Little-endian hosts only.
"""

from __future__ import annotations

from internals.stats._dtypes import dtype_info, readable_dtype
from internals.stats.core import (
    CHUNK_ELEMENTS,
    MIN_BLOCK_ELEMENTS,
    QUANTILES,
    PatternCounts,
    TensorStats,
    compute_tensor_stats,
    count_patterns,
    count_patterns_many,
    histogram_from_counts,
    set_threads,
    tensor_histogram,
    threads,
)


def naive_stats(*args, **kwargs):  # noqa: D103 - documented in internals.stats.naive
    from internals.stats.naive import naive_stats as _naive

    return _naive(*args, **kwargs)


naive_stats.__doc__ = "The torch baseline (`internals.stats.naive.naive_stats`), for the benchmark only."

__all__ = [
    "CHUNK_ELEMENTS",
    "MIN_BLOCK_ELEMENTS",
    "QUANTILES",
    "PatternCounts",
    "TensorStats",
    "compute_tensor_stats",
    "count_patterns",
    "count_patterns_many",
    "dtype_info",
    "histogram_from_counts",
    "naive_stats",
    "readable_dtype",
    "set_threads",
    "tensor_histogram",
    "threads",
]
