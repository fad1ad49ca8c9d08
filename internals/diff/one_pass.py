"""The weight diff of two BF16 (or two F16) tensors in ONE read: sums, extremes and numpy's histogram from
exact counts.

`internals.diff._kernels.pattern_block` counts every ΔW = tuned − base under its bf16 (f16) pattern when ΔW
is exactly that value (the two sides share sign and exponent, and most pairs whose exponents differ), and
keeps the exact value of every other ΔW (the overflow: float32 when it holds the value, NaN included,
else float64). Each counted pattern is then one exact value, so

- min/max ΔW are the extremes of the counted values and the overflow (NaN skipped; −0.0 below +0.0, the
  order of the two passes' integer keys); the overflow's are kept by the kernel as it writes the values;
- numpy's histogram over [min, max] is the histogram of at most 65,536 distinct values with their counts
  plus the overflow values (`hist_weighted`: the same binning rule as the two passes);
- Σ ΔW², Σ W², Σ W·ΔW are summed in float64 tile by tile, as in the first of the two passes.

Blocks run on the statistics engine's worker threads (`internals.stats.core._run_blocks`). Each worker
takes a 65,536-entry uint32 table from a free list (allocated once per concurrent worker, zeroed after
each tensor) and overflow buffers that grow by doubling up to `OVERFLOW_LIMIT` values; past that, or when
ΔW has no finite extreme (infinite values, NaN only), `one_pass` returns None and the caller runs the two
passes (their rules for infinite edges apply).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Smaller tensors take the two passes: merging the tables costs about what one pass saves there.
MIN_ELEMENTS = 1 << 18
#: Overflow values per worker and tensor before giving up on the one pass (float32: 32 MiB).
OVERFLOW_LIMIT = 1 << 23
_START = 1 << 16

_FREE_TABLES: list[np.ndarray] = []
_FREE_LOCK = threading.Lock()


def _take_table() -> np.ndarray:
    from internals.diff._kernels import BF16_KEYS

    with _FREE_LOCK:
        if _FREE_TABLES:
            return _FREE_TABLES.pop()
    return np.zeros(BF16_KEYS, np.uint32)


def _return_table(table: np.ndarray) -> None:
    table[:] = 0
    with _FREE_LOCK:
        _FREE_TABLES.append(table)


class _Worker:
    """One worker thread's table, overflow buffers and overflow extremes (order-preserving keys) for one
    tensor."""

    __slots__ = ("table", "over32", "over64", "used", "ext")

    def __init__(self) -> None:
        from internals.diff._kernels import TILE

        self.table = _take_table()
        self.over32 = np.empty(_START, np.float32)
        self.over64 = np.empty(2 * TILE, np.float64)  # rare: a ΔW float32 does not hold
        self.used = np.zeros(2, np.int64)
        self.ext = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min])

    def grow(self) -> bool:
        """Double the buffers that cannot take another tile; False past OVERFLOW_LIMIT."""
        from internals.diff._kernels import TILE

        for name, k in (("over32", 0), ("over64", 1)):
            buf = getattr(self, name)
            if self.used[k] + TILE > buf.size:
                if buf.size >= OVERFLOW_LIMIT:
                    return False
                bigger = np.empty(min(OVERFLOW_LIMIT, 2 * buf.size), buf.dtype)
                bigger[: self.used[k]] = buf[: self.used[k]]
                setattr(self, name, bigger)
        return True

    def overflow(self) -> list[np.ndarray]:
        return [self.over32[: self.used[0]], self.over64[: self.used[1]]]


_NO_WEIGHTS = np.zeros(0, np.int64)


@dataclass
class OnePass:
    """What one read of two BF16 tensors gives: the float64 sums, the extremes of ΔW, ΔW's distinct counted
    values with their counts, and the overflow values (one count each), for `histogram`."""

    delta2: float
    base2: float
    cross: float
    lo: float
    hi: float
    values: np.ndarray
    weights: np.ndarray
    overflow: list[np.ndarray]

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        """numpy.histogram's counts of ΔW over `edges` (NaN in bin 0, as the two passes count them); the
        counted values and each worker's overflow on the worker threads."""
        from internals.diff._kernels import hist_weighted

        parts = [(self.values, self.weights)] + [(values, _NO_WEIGHTS) for values in self.overflow]

        def work(counts: np.ndarray, i: int, _lo: int, _hi: int) -> None:
            hist_weighted(*parts[i], edges, counts)

        return np.sum(_each(parts, lambda: np.zeros(edges.size - 1, np.int64), work), axis=0)


def _each(parts: list, make_state: Callable[[], np.ndarray], work: Callable) -> list[np.ndarray]:
    """work(state, i, i, i + 1) for every part i on the statistics engine's worker threads; their states."""
    from internals.stats.core import _run_blocks

    return _run_blocks(len(parts), 1, make_state, work)


def one_pass(base: np.ndarray, tuned: np.ndarray, block: int, check: Callable[[], None] | None,
             code: str = "BF16") -> OnePass | None:
    """The one-read summary of two flat tensors of 16-bit float patterns (`code`: "BF16" or "F16"), or None
    (then run the two passes).

    `block`: values per block of work (the two passes' blocks, so the float sums combine alike)."""
    import math

    from internals.diff._kernels import BF16_KEYS, KIND_BF16, KIND_TABLE, OVER, _key_value, ordered_range, pattern_block
    from internals.stats._dtypes import pattern_values
    from internals.stats.core import _run_blocks

    kind = KIND_BF16 if code == "BF16" else KIND_TABLE
    n = base.size
    if n < MIN_ELEMENTS or n >= 1 << 32 or tuned.size != n:
        return None
    nblocks = -(-n // block)
    parts = np.zeros((nblocks, 3))
    gave_up = threading.Event()

    def work(state: _Worker, i: int, lo: int, hi: int) -> None:
        if check:
            check()
        while not gave_up.is_set() and (lo := pattern_block(base, tuned, kind, lo, hi, parts[i], state.table,
                                                             state.over32, state.over64, state.used,
                                                             state.ext)) < hi:
            if not state.grow():
                gave_up.set()

    workers: list[_Worker] = []

    def make_state() -> _Worker:
        w = _Worker()
        with _FREE_LOCK:
            workers.append(w)
        return w

    _run_blocks(n, block, make_state, work)  # on an error (a cancel) the tables are dropped, not reused:
    # another worker may still be counting into its table
    total = np.zeros(BF16_KEYS, np.int64)
    for w in workers:
        total += w.table
        _return_table(w.table)
    if gave_up.is_set():
        return None
    seen = np.flatnonzero(total[:OVER])  # OVER is the last pattern
    overflow = [part for w in workers for part in w.overflow() if part.size]
    assert int(total[OVER]) == sum(part.size for part in overflow), "overflow values lost"
    values = pattern_values(code)[seen]
    keys = np.array([min(int(w.ext[0]) for w in workers), max(int(w.ext[1]) for w in workers)])
    ordered_range(values, keys)  # the counted values' extremes (the overflow's were kept as it was written)
    if keys[0] > keys[1]:  # NaN only
        return None
    lo, hi = (float(_key_value(k)) for k in keys)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    delta2, base2, cross = (math.fsum(parts[:, k]) for k in range(3))
    return OnePass(delta2, base2, cross, lo, hi, values, total[seen], overflow)
