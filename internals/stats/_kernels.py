"""Compiled numba kernels for `internals.stats` (imported lazily: importing numba takes a moment).

Every kernel works on one chunk (a 1-D contiguous array) and splits it into one contiguous block per
thread; each thread fills its own sub-histogram / partial sums, and the partials are reduced serially at
the end of the call into accumulators owned by the caller (so a tensor is processed chunk by chunk with
memory bounded by the chunk's per-thread tables, never by the tensor).

- `count_patterns`: counts of every bit pattern of an 8/16-bit array (one integer pass).
- `float_pass1`: finite/nan/inf/zero counts, sum, sum|x|, sum x^2, min, max over finite values, plus the
  counts of the top 16 bits of the order-preserving key of each finite value (first radix digit).
- `float_pass2`: with the mean known: sum d, d^2, d^4 (d = x - mean); the numpy-compatible histogram;
  and the counts of one further 16-bit radix digit for the elements under selected key prefixes.

Keys: a float's bits b (nbits wide) map to an unsigned key that sorts like the value:
key = b ^ all_ones if the sign bit is set else b | sign_bit.

Caching: `cache=True` writes compiled code next to this file (__pycache__) or to numba's user-wide cache;
when no cache location is usable numba raises at decoration, and we fall back to compiling per process.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def _jit(**options):
    def decorate(fn):
        try:
            return njit(cache=True, **options)(fn)
        except Exception:  # numba: "cannot cache function ...: no locator available" (read-only install)
            return njit(cache=False, **options)(fn)

    return decorate


# --------------------------------------------------------------------------------------------------
# pattern counting (8/16-bit dtypes)


@_jit(nogil=True)
def _count_block(x, c):
    for i in range(x.size):
        c[x[i]] += 1


@_jit(parallel=True, nogil=True)
def count_patterns(x, total, nt):
    """total[p] += number of elements of x equal to p (x: uint8/uint16; total: int64[256 or 65536]).

    Per-thread counts are uint32: the caller keeps x.size / nt below 2**32.
    """
    n = x.size
    nb = total.size
    local = np.zeros((nt, nb), np.uint32)
    step = (n + nt - 1) // nt
    for t in prange(nt):
        lo = min(n, t * step)
        hi = min(n, lo + step)
        _count_block(x[lo:hi], local[t])
    for t in range(nt):
        for j in range(nb):
            total[j] += local[t, j]


# --------------------------------------------------------------------------------------------------
# wide floats (F32, F64; integers arrive here converted to float64)


@_jit(nogil=True)
def _nadd(s, c, v):
    """Neumaier compensated addition: returns the new (sum, compensation)."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@_jit(nogil=True)
def _pass1_block(x, u, nbits, top):
    sign = np.uint64(1) << np.uint64(nbits - 1)
    ones = (sign - np.uint64(1)) | sign
    shift = np.uint64(nbits - 16)
    nfin = 0
    nnan = 0
    ninf = 0
    nzero = 0
    s = 0.0
    sa = 0.0
    sq = 0.0
    mn = np.inf
    mx = -np.inf
    for i in range(x.size):
        v = np.float64(x[i])
        if v - v == 0.0:
            nfin += 1
            s += v
            sa += abs(v)
            sq += v * v
            if v < mn:
                mn = v
            if v > mx:
                mx = v
            if v == 0.0:
                nzero += 1
            b = np.uint64(u[i])
            if b & sign:
                key = b ^ ones
            else:
                key = b | sign
            top[key >> shift] += 1
        elif v != v:
            nnan += 1
        else:
            ninf += 1
    return nfin, nnan, ninf, nzero, s, sa, sq, mn, mx


@_jit(parallel=True, nogil=True)
def float_pass1(x, u, nbits, nt, counts, sums, top):
    """Accumulate one chunk. x: float32/float64 array; u: the same memory as uint32/uint64.

    counts int64[4] += finite, nan, inf, zeros.
    sums float64[8]: [sum, sum|x|, sum x^2, min, max, comp_sum, comp_abs, comp_sq] (Neumaier merge).
    top int64[65536] += counts of the top 16 key bits of finite values.
    """
    n = x.size
    step = (n + nt - 1) // nt
    ltop = np.zeros((nt, 65536), np.uint32)
    pc = np.zeros((nt, 4), np.int64)
    pf = np.zeros((nt, 5), np.float64)
    for t in prange(nt):
        lo = min(n, t * step)
        hi = min(n, lo + step)
        r = _pass1_block(x[lo:hi], u[lo:hi], nbits, ltop[t])
        pc[t, 0] = r[0]
        pc[t, 1] = r[1]
        pc[t, 2] = r[2]
        pc[t, 3] = r[3]
        pf[t, 0] = r[4]
        pf[t, 1] = r[5]
        pf[t, 2] = r[6]
        pf[t, 3] = r[7]
        pf[t, 4] = r[8]
    for t in range(nt):
        for k in range(4):
            counts[k] += pc[t, k]
        for k in range(3):
            sums[k], sums[5 + k] = _nadd(sums[k], sums[5 + k], pf[t, k])
        if pf[t, 3] < sums[3]:
            sums[3] = pf[t, 3]
        if pf[t, 4] > sums[4]:
            sums[4] = pf[t, 4]
        for j in range(65536):
            top[j] += ltop[t, j]


@_jit(nogil=True)
def _pass2_block(x, u, nbits, moments, mean, first, last, denom, edges, hist,
                 prefix_shift, digit_shift, table16, slot_top, slot_prefix, refine):
    sign = np.uint64(1) << np.uint64(nbits - 1)
    ones = (sign - np.uint64(1)) | sign
    tshift = np.uint64(nbits - 16)
    pshift = np.uint64(prefix_shift)
    dshift = np.uint64(digit_shift)
    nbins = hist.size
    nslots = slot_prefix.size
    s1 = 0.0
    s2 = 0.0
    s4 = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        if v - v != 0.0:
            continue
        if moments:
            d = v - mean
            d2 = d * d
            s1 += d
            s2 += d2
            s4 += d2 * d2
        if nbins > 0 and v >= first and v <= last:
            # numpy.histogram's uniform-bin rule, including its one-ulp corrections
            idx = int(((v - first) / denom) * nbins)
            if idx == nbins:
                idx -= 1
            if v < edges[idx]:
                idx -= 1
            if idx != nbins - 1 and v >= edges[idx + 1]:
                idx += 1
            hist[idx] += 1
        if nslots > 0:
            b = np.uint64(u[i])
            if b & sign:
                key = b ^ ones
            else:
                key = b | sign
            top = key >> tshift
            j = table16[top]
            if j >= 0:
                pre = key >> pshift
                while j < nslots and slot_top[j] == top:
                    if slot_prefix[j] == pre:
                        refine[j, (key >> dshift) & np.uint64(0xFFFF)] += 1
                        break
                    j += 1
    return s1, s2, s4


@_jit(parallel=True, nogil=True)
def float_pass2(x, u, nbits, nt, moments, mean, first, last, denom, edges, hist, central,
                prefix_shift, digit_shift, table16, slot_top, slot_prefix, refine):
    """Second pass over one chunk (see module doc).

    moments: accumulate central[0..2] += sum d, d^2, d^4 (compensations in central[3..5]).
    hist int64[bins] (size 0: no histogram) over [first, last] with `edges` = linspace(first, last, bins+1).
    Radix refinement (slot_prefix.size > 0): for a finite value whose key >> prefix_shift equals
    slot_prefix[j], refine[j, (key >> digit_shift) & 0xFFFF] += 1. Slots are sorted by prefix;
    slot_top[j] is the top 16 key bits of slot j and table16[top] the first slot with that top (or -1).
    """
    n = x.size
    step = (n + nt - 1) // nt
    nbins = hist.size
    nslots = slot_prefix.size
    lhist = np.zeros((nt, nbins), np.int64)
    lref = np.zeros((nt, nslots, 65536), np.uint32)
    pf = np.zeros((nt, 3), np.float64)
    for t in prange(nt):
        lo = min(n, t * step)
        hi = min(n, lo + step)
        r = _pass2_block(x[lo:hi], u[lo:hi], nbits, moments, mean, first, last, denom, edges, lhist[t],
                         prefix_shift, digit_shift, table16, slot_top, slot_prefix, lref[t])
        pf[t, 0] = r[0]
        pf[t, 1] = r[1]
        pf[t, 2] = r[2]
    for t in range(nt):
        for k in range(3):
            central[k], central[3 + k] = _nadd(central[k], central[3 + k], pf[t, k])
        for j in range(nbins):
            hist[j] += lhist[t, j]
        for s in range(nslots):
            for j in range(65536):
                refine[s, j] += lref[t, s, j]
