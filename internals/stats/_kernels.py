"""Compiled numba kernels for `internals.stats` (imported lazily: importing numba takes a moment).

Each kernel is serial, `nogil=True`, and processes one unit of work (a block of a tensor, or a span of
pattern data) into tables owned by the calling worker thread; `internals.stats.core` runs one worker per
thread over the units and combines what they write. Serial kernels driven
by Python threads compile in a fraction of the time of `parallel=True` ones and do not depend on numba's
threading layers (the "workqueue" layer aborts on concurrent launches, GNU OpenMP breaks across fork).

- `count_pieces` / `read_count_pieces`: counts of every bit pattern of many 8/16-bit pieces of one
  buffer (or of one file, read through a small buffer), written sparse (non-zero patterns only) so that
  no per-tensor table is allocated, zeroed or merged.
- `pass1_block`: finite/nan/inf/zero counts, sum, sum|x|, sum x^2, min, max over finite values, plus
  the counts of the top 16 bits of the order-preserving key of each finite value (first radix digit).
- `pass2_block`: with the mean known, sum d, d^2, d^4 (d = x - mean); the numpy-compatible histogram;
  and the counts of one further 16-bit radix digit under selected key prefixes (radix select).
- `summarize_counts`: every moment, order statistic and the histogram of a multiset given by its
  distinct values and their counts (what an 8/16-bit tensor's statistics derive from).

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
def count_range(x, w, head, use_words, lo, hi, table):
    """table[p] += number of elements of x[lo:hi] equal to p. With `use_words`, 16-bit data is read four
    patterns at a time from `w`, the uint64 words of the same memory from element `head` on (x[head] is
    8-byte aligned): about 15% faster than one element at a time."""
    a = lo
    if use_words:
        if lo < head:
            a = head
        else:
            a = lo + (head - lo) % 4
        if a > hi:
            a = hi
    for i in range(lo, a):
        table[x[i]] += 1
    if use_words:
        m = np.uint64(0xFFFF)
        k0 = (a - head) // 4
        nw = (hi - a) // 4
        for k in range(k0, k0 + nw):
            v = w[k]
            table[v & m] += 1
            table[(v >> np.uint64(16)) & m] += 1
            table[(v >> np.uint64(32)) & m] += 1
            table[v >> np.uint64(48)] += 1
        a += 4 * nw
    for i in range(a, hi):
        table[x[i]] += 1


@_jit
def drain_table(x, lo, hi, walk, table, out_pats, out_cnts, pos):
    """Write the table's non-zero (pattern, count) pairs to out_pats/out_cnts from `pos` and clear the
    table; returns the new end. `walk`: the table holds only the counts of x[lo:hi], which is short, so its
    elements are walked instead of the whole table (a small tensor costs its size, not the table's)."""
    n = hi - lo if walk else table.size
    for i in range(n):
        p = np.int64(x[lo + i]) if walk else i
        c = table[p]
        if c != 0:
            out_pats[pos] = p
            out_cnts[pos] = c
            table[p] = 0
            pos += 1
    return pos


@_jit
def count_pieces(x, w, head, use_words, starts, stops, table, out_pats, out_cnts, out_len):
    """Counts of every bit pattern of each piece x[starts[j]:stops[j]] (uint8/uint16 elements), written
    sparse: the non-zero (pattern, count) pairs of piece j go to out_pats/out_cnts from offset
    sum(out_len[:j]) (out_len[j] of them, in no particular order). `table`: this thread's zeroed uint32
    table (256 or 65,536 entries), left zeroed; each piece has fewer than 2**32 elements. Returns the
    pairs written."""
    pos = 0
    for j in range(starts.size):
        lo = starts[j]
        hi = stops[j]
        count_range(x, w, head, use_words, lo, hi, table)
        first = pos
        pos = drain_table(x, lo, hi, (hi - lo) * 4 < table.size, table, out_pats, out_cnts, pos)
        out_len[j] = pos - first
    return pos


@_jit
def read_count_pieces(pread, fd, buf, wide, offsets, lengths, table, out_pats, out_cnts, out_len):
    """`count_pieces` of pieces of a file, read with `pread` (libc's, through ctypes) into `buf` (this
    thread's buffer, 8-byte aligned, a multiple of 8 bytes): piece j is lengths[j] elements (16-bit when
    `wide`, else 8-bit) from byte offsets[j]. Reading into a buffer that stays in cache costs less than
    mapping a file's pages into the process. Returns the pairs written, or -1 when a read fails."""
    x16 = buf.view(np.uint16)
    w = buf.view(np.uint64)
    isz = 2 if wide else 1
    pos = 0
    for j in range(offsets.size):
        n = lengths[j]
        off = offsets[j]
        left = n * isz
        want = 0
        while left > 0:
            want = min(left, buf.size)
            got = 0
            while got < want:
                r = pread(fd, buf.ctypes.data + np.uint64(got), want - got, off + got)
                if r <= 0:
                    return -1
                got += r
            if wide:
                count_range(x16, w, 0, True, 0, want // 2, table)
            else:
                count_range(buf, w, 0, False, 0, want, table)
            off += want
            left -= want
        first = pos
        walk = n * isz <= buf.size and n * 4 < table.size  # the last read holds the whole piece
        if wide:
            pos = drain_table(x16, 0, n, walk, table, out_pats, out_cnts, pos)
        else:
            pos = drain_table(buf, 0, n, walk, table, out_pats, out_cnts, pos)
        out_len[j] = pos - first
    return pos


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
def summarize_counts(cnts, pats, values, ranks, edges, first, last, hist, ranked):
    """Statistics of a multiset given by pattern counts, from its distinct patterns sorted by value.

    pats: the finite patterns with a non-zero count, ascending by value; cnts int64: their counts;
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
        c = cnts[j]
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
        c = cnts[j]
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
