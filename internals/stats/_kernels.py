"""Compiled numba kernels for `internals.stats` (imported lazily: importing numba takes a moment).

Each kernel is serial, `nogil=True`, and processes one block (a 1-D contiguous array) into tables owned
by the calling worker thread; `internals.stats.core` runs one worker per thread over the blocks of a
tensor (one sub-histogram per thread) and reduces the workers' tables at the end. Serial kernels driven
by Python threads compile in a fraction of the time of `parallel=True` ones and do not depend on numba's
threading layers (the "workqueue" layer aborts on concurrent launches, GNU OpenMP breaks across fork).

- `count_block` / `count_block_words`: counts of every bit pattern of an 8/16-bit block.
- `pass1_block`: finite/nan/inf/zero counts, sum, sum|x|, sum x^2, min, max over finite values, plus
  the counts of the top 16 bits of the order-preserving key of each finite value (first radix digit).
- `pass2_block`: with the mean known, sum d, d^2, d^4 (d = x - mean); the numpy-compatible histogram;
  and the counts of one further 16-bit radix digit under selected key prefixes (radix select).

Keys: a float's bits b (nbits wide) map to an unsigned key that sorts like the value:
key = b ^ all_ones if the sign bit is set else b | sign_bit.

Caching: `cache=True` writes compiled code next to this file (__pycache__) or to numba's user-wide cache;
when no cache location is usable numba raises at decoration and we compile per process instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _jit(fn=None, **options):
    """`njit(cache=True, nogil=True, **options)`, compiling per process when no cache location is usable;
    used bare (`@_jit`) or with numba options (`@_jit(fastmath={...})`)."""
    if fn is None:
        return lambda f: _jit(f, **options)
    try:
        return njit(cache=True, nogil=True, **options)(fn)
    except Exception:  # numba: "cannot cache function ...: no locator available" (read-only install)
        return njit(cache=False, nogil=True, **options)(fn)


@_jit
def bin_index(v, first, span, nbins, edges):
    """numpy.histogram's bin of `v` in [first, first + span] (nbins bins with these edges): the linear guess,
    the last edge closed, then corrected by one against the edges, as numpy does."""
    idx = int(((v - first) / span) * nbins)
    if idx == nbins:
        idx -= 1
    if v < edges[idx]:
        idx -= 1
    if idx != nbins - 1 and v >= edges[idx + 1]:
        idx += 1
    return idx


@_jit
def count_block(x, c):
    """c[p] += number of elements of x (uint8/uint16) equal to p; c: uint32 (the caller flushes)."""
    for i in range(x.size):
        c[x[i]] += 1


@_jit
def count_block_words(w, c):
    """count_block for 16-bit patterns read four at a time from uint64 words (little-endian); ~15% faster."""
    m = np.uint64(0xFFFF)
    for i in range(w.size):
        a = w[i]
        c[a & m] += 1
        c[(a >> np.uint64(16)) & m] += 1
        c[(a >> np.uint64(32)) & m] += 1
        c[a >> np.uint64(48)] += 1


@_jit
def pass1_block(x, u, nbits, top):
    """x: float32/float64 block; u: the same memory as uint32/uint64; top: uint32[65536] (+= key >> (nbits-16)).

    Returns (finite, nan, inf, zeros, sum, sum|x|, sum x^2, min, max) over the block.
    """
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


@_jit
def pass2_block(x, u, nbits, moments, mean, first, last, denom, edges, hist,
                prefix_shift, digit_shift, table16, slot_top, slot_prefix, refine):
    """Second pass over a block; returns (sum d, sum d^2, sum d^4) when `moments` (zeros otherwise).

    hist int64[bins] (size 0: no histogram) over [first, last], `edges` = linspace(first, last, bins+1),
    numpy.histogram's rule (including its one-ulp corrections, last bin closed).
    Radix refinement (slot_prefix.size > 0): a finite value whose key >> prefix_shift equals
    slot_prefix[j] adds 1 to refine[j, (key >> digit_shift) & 0xFFFF]. Slots are sorted by prefix;
    slot_top[j] is slot j's top 16 key bits and table16[top] the first slot with that top (or -1).
    """
    sign = np.uint64(1) << np.uint64(nbits - 1)
    ones = (sign - np.uint64(1)) | sign
    tshift = np.uint64(nbits - 16)
    pshift = np.uint64(prefix_shift)
    dshift = np.uint64(digit_shift)
    low16 = np.uint64(0xFFFF)
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
            hist[bin_index(v, first, denom, nbins, edges)] += 1
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
                        refine[j, (key >> dshift) & low16] += 1
                        break
                    j += 1
    return s1, s2, s4


@_jit
def nonzero_in_order(counts, order, out):
    """Write the patterns of `order` whose count is not zero to out[:k], keeping the order; returns k."""
    k = 0
    for j in range(order.size):
        p = order[j]
        if counts[p] != 0:
            out[k] = p
            k += 1
    return k


@_jit
def summarize_counts(counts, pats, values, ranks, edges, first, last, hist, ranked):
    """Statistics of a multiset given by pattern counts, from its distinct patterns sorted by value.

    counts int64[patterns]; pats: the finite patterns with a non-zero count, ascending by value;
    values float64 per pattern; ranks: sorted 0-based order statistics wanted (values to `ranked`);
    hist int64[bins] over [first, last] with `edges` (numpy.histogram's rule).
    Returns (n, sum, sum|x|, sum x^2, sum d^2, sum d^4) with d = x - mean (mean = sum / n, or the value
    itself when there is only one); the sum of count x value products is Neumaier-compensated.
    """
    m = pats.size
    n = 0
    s = 0.0
    cs = 0.0
    sa = 0.0
    sq = 0.0
    for j in range(m):
        p = pats[j]
        c = counts[p]
        v = values[p]
        n += c
        w = c * v
        t = s + w
        if abs(s) >= abs(w):
            cs += (s - t) + w
        else:
            cs += (w - t) + s
        s = t
        sa += c * abs(v)
        sq += c * v * v
    s += cs
    mean = values[pats[0]] if m == 1 else s / n
    s2 = 0.0
    s4 = 0.0
    nbins = hist.size
    cum = 0
    r = 0
    nr = ranks.size
    for j in range(m):
        p = pats[j]
        c = counts[p]
        v = values[p]
        d = v - mean
        d2 = d * d
        s2 += c * d2
        s4 += c * d2 * d2
        cum += c
        while r < nr and ranks[r] < cum:
            ranked[r] = v
            r += 1
        if nbins > 0 and v >= first and v <= last:
            hist[bin_index(v, first, last - first, nbins, edges)] += c
    return n, s, sa, sq, s2, s4
