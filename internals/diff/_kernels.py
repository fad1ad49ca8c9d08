"""numba kernels of the weight diff of two stored tensors (no temporaries, no float64 copies).

Values are decoded in the loop: 16-bit floats (BF16, F16) through the 65,536-entry float64 table of
`internals.stats` (one L2-resident lookup per value), F32/F64 directly. Each kernel covers [lo, hi) of the
flat tensors; `internals.diff.weights` cuts a tensor into blocks and runs them on the statistics engine's
worker threads (`internals.stats.core._run_blocks`), combining float64 partial sums per block with fsum.
Compiled once per process and pair of value kinds (~1 s each).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_KERNELS: dict = {}


@njit(nogil=True, inline="always")
def _tab(a, tab, i):
    return tab[a[i]]


@njit(nogil=True, inline="always")
def _flt(a, tab, i):
    return np.float64(a[i])


def kernels(table_base: bool, table_tuned: bool):
    """(sums, hist) kernels for the given decoding of each side (True: 16-bit pattern table)."""
    key = (table_base, table_tuned)
    if key not in _KERNELS:
        _KERNELS[key] = _make(_tab if table_base else _flt, _tab if table_tuned else _flt)
    return _KERNELS[key]


def _make(dec_b, dec_t):
    @njit(nogil=True)
    def sums(b, tb, t, tt, lo, hi, out):
        """out[:] = Σ d², Σ w², Σ w·d, min d, max d over [lo, hi), d = t − w."""
        dd = 0.0
        bb = 0.0
        bd = 0.0
        mn = np.inf
        mx = -np.inf
        for i in range(lo, hi):
            x = dec_b(b, tb, i)
            d = dec_t(t, tt, i) - x
            dd += d * d
            bb += x * x
            bd += x * d
            if d < mn:
                mn = d
            if d > mx:
                mx = d
        out[0] = dd
        out[1] = bb
        out[2] = bd
        out[3] = mn
        out[4] = mx

    @njit(nogil=True)
    def hist(b, tb, t, tt, lo, hi, edges, counts):
        """counts[k] += values of d in bin k, numpy.histogram's rule for equal bins over edges[0]..edges[-1]."""
        nb = counts.size
        first = edges[0]
        norm = nb / (edges[nb] - first)
        for i in range(lo, hi):
            d = dec_t(t, tt, i) - dec_b(b, tb, i)
            k = int((d - first) * norm)
            if k >= nb:
                k = nb - 1
            if k < 0:
                k = 0
            if d < edges[k] and k > 0:
                k -= 1
            if k != nb - 1 and d >= edges[k + 1]:
                k += 1
            counts[k] += 1

    return sums, hist
