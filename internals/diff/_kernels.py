"""numba kernels of the weight diff of two stored tensors (no temporaries beyond per-call tiles of a few KiB).

Each kernel covers [lo, hi) of the two flat tensors, tile by tile (`TILE` values): a tile of each side is
decoded into float64 (BF16 by a shift into the top half of a float32, F16 through the 65,536-entry float64
table of `internals.stats`, F32/F64 by conversion) and ΔW = tuned − base is formed in float64, exactly as
before; the loops over a tile are plain, so LLVM vectorizes them (the tile slices start at 0, so numba's
negative-index checks go away). `internals.diff.weights` cuts a tensor into blocks and runs them on the
statistics engine's worker threads (`internals.stats.core._run_blocks`), combining float64 partial sums per
block with fsum.

- `moments_block`: Σ ΔW², Σ W², Σ W·ΔW (float64, reassociated within a tile only: equal to a serial sum to
  float tolerance) and min/max ΔW. min/max are taken on order-preserving integer keys (vectorizable); a
  tile holding a NaN ΔW (its Σ ΔW² is NaN) is redone serially so that NaN is skipped, as numpy's nanmin does.
- `hist_block`: numpy.histogram's bin of every ΔW over edges[0]..edges[-1] (equal bins, the linear guess
  then one correction against the edges, the last bin closed; a NaN goes to bin 0, as the first kernels
  did), counted into four interleaved tables so that runs of one bin do not serialize on one counter.
  When numpy's edges are exactly k·step + edges[0] (checked once per call; true for finite ranges) the
  correction computes the two edges instead of looking them up, so the binning loop vectorizes; bf16
  changes are coarse and sit on edges often, so the correction cannot be skipped.

- `pattern_block` (both sides BF16, the reference model's dtype; or both F16): ONE pass. The sums as in
  `moments_block`, and every ΔW counted by its value: a ΔW that is exactly a bf16 value (float32(ΔW) with
  its low 16 bits cleared equals ΔW: true whenever the two sides share sign and exponent, and for ~97% of
  the pairs of the benchmark's perturbed checkpoint) is counted in a 65,536-entry table under its bf16
  pattern (a 16-bit key; a NaN pattern, `OVER`, counts the rest); every other ΔW (more than 8 significant
  bits, NaN, beyond float32) keeps its exact value in an overflow buffer (float32 when it holds it, else
  float64), found after the table update through a bitmask of the tile (one 64-lane vector compare per
  word, `_over_word`), only in tiles that had any, and written as float32 without a branch per value
  (`_overflow_f32`; a tile with a value float32 does not hold is redone value by value). The loop over a
  tile that decodes, sums and forms the keys uses bit casts (`_bitcast`) and vectorizes. F16: the same
  with the f16 pattern ΔW would have, kept when that pattern's value is ΔW (`_f16_key`). Each table entry
  then stands for ONE exact value, so min/max and numpy's histogram follow from the counted values ×
  counts plus the overflow values (`hist_weighted`; the extremes of the overflow are kept as it is
  written, `ordered_range` gives those of the counted values): the figures of the two passes, in one read
  (`internals.diff.one_pass`).

Kinds of a side: `KIND_BF16` (uint16 patterns), `KIND_TABLE` (uint16 patterns + float64 table: F16),
`KIND_FLOAT` (float32/float64 values). Compiled once per machine per pair of array types (cached by numba).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from internals.stats._kernels import _jit

KIND_BF16 = 0
KIND_TABLE = 1
KIND_FLOAT = 2

#: Values per tile: the tile buffers (5 x 8 KiB) stay in L1.
TILE = 1024
#: Interleaved histogram tables (a run of equal bins would otherwise wait on one counter per value).
HIST_WAYS = 4

_SIGN_OFF = np.int64(0x7FFFFFFFFFFFFFFF)


@_jit(inline="always")
def _order_key(bits):
    """The int64 key of a float64's bits that sorts as the values do (−0.0 just below +0.0), and back: the map
    flips the magnitude bits of negative numbers, so it is its own inverse."""
    return bits ^ ((bits >> 63) & _SIGN_OFF)
#: Entries of `pattern_block`'s table: one per 16-bit pattern. A NaN pattern (never an exact ΔW) counts the
#: overflowing ΔW, so that keys stay 16-bit (a uint16 tile of keys: a sixth faster than int32 keys).
BF16_KEYS = 1 << 16
OVER = 0xFFFF
# Argument order of the kernels: (base, base_kind, base_table, tuned, tuned_kind, tuned_table, lo, hi, ...).


def _bitcast(source, target, llvm_type, doc: str):
    """A numba intrinsic reinterpreting the bits of a `source` scalar as a `target` (vectorizes, unlike a
    view of a one-element array)."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_type)

        return target(source), codegen

    cast.__doc__ = doc
    return cast


_f32_from_bits = _bitcast(types.uint32, types.float32, ir.FloatType(), "The float32 whose bits are a uint32.")
_bits_of_f32 = _bitcast(types.float32, types.uint32, ir.IntType(32), "The uint32 bits of a float32.")
_bits_of_f64 = _bitcast(types.float64, types.int64, ir.IntType(64), "The int64 bits of a float64.")


@intrinsic
def _trailing_zeros(typingctx, x):
    """Trailing zero bits of the uint64 x (nonzero): the next set bit of an overflow bitmask."""

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(types.uint64), codegen


@_jit
def _decode(src, kind, table, u, f, out):
    """out[:src.size] = float64 values of src (one tile), decoded by kind; u/f: a uint32 tile and its float32 view.

    Compiled per array type, every branch included: the pattern branches cast to uint16 (a no-op on the
    uint16 arrays they are used with) so that they also type-check for float32/float64 arrays."""
    m = src.size
    if kind == KIND_BF16:
        for j in range(m):
            u[j] = np.uint32(np.uint16(src[j])) << np.uint32(16)
        for j in range(m):
            out[j] = f[j]
    elif kind == KIND_TABLE:
        for j in range(m):
            out[j] = table[np.uint16(src[j])]
    else:
        for j in range(m):
            out[j] = src[j]


@_jit
def _delta_tile(b, bk, btab, t, tk, ttab, s, e, u, f, w, d):
    """w[:e-s] = base values, d[:e-s] = tuned − base (float64) of the tile [s, e)."""
    _decode(b[s:e], bk, btab, u, f, w)
    _decode(t[s:e], tk, ttab, u, f, d)
    m = e - s
    for j in range(m):
        d[j] = d[j] - w[j]


@_jit(fastmath={"reassoc", "nsz", "contract"})
def _tile_sums(w, d, m, acc):
    """acc[0:3] += Σ d², Σ w², Σ w·d over the first m values (reassociated: vectorized)."""
    dd = bb = bd = 0.0
    for j in range(m):
        x, y = w[j], d[j]
        dd += y * y
        bb += x * x
        bd += x * y
    acc[0] += dd
    acc[1] += bb
    acc[2] += bd
    return dd


@_jit
def _key_range(d, m, keys):
    """keys[0] = min, keys[1] = max of the order-preserving int64 keys of d[:m] (no NaN in d)."""
    k = d[:m].view(np.int64)
    lo = keys[0]
    hi = keys[1]
    for j in range(m):
        v = _order_key(k[j])
        lo = min(lo, v)
        hi = max(hi, v)
    keys[0] = lo
    keys[1] = hi


@_jit
def _nan_skipping_range(d, m, acc):
    """acc[3] = min, acc[4] = max of d[:m] ∪ {acc[3], acc[4]}, NaN skipped (serial: tiles with a NaN only)."""
    mn = acc[3]
    mx = acc[4]
    for j in range(m):
        y = d[j]
        if y < mn:
            mn = y
        if y > mx:
            mx = y
    acc[3] = mn
    acc[4] = mx


@_jit
def _key_value(key):
    k = np.empty(1, np.int64)
    k[0] = _order_key(key)
    return k.view(np.float64)[0]


@_jit
def moments_block(b, bk, btab, t, tk, ttab, lo, hi, out):
    """out[:] = Σ ΔW², Σ W², Σ W·ΔW, min ΔW, max ΔW over [lo, hi) (min/max skip NaN; inf/−inf if none)."""
    u = np.empty(TILE, np.uint32)
    f = u.view(np.float32)
    w = np.empty(TILE)
    d = np.empty(TILE)
    acc = np.zeros(5)
    acc[3] = np.inf
    acc[4] = -np.inf
    keys = np.empty(2, np.int64)
    keys[0] = np.iinfo(np.int64).max
    keys[1] = np.iinfo(np.int64).min
    for s in range(lo, hi, TILE):
        e = min(hi, s + TILE)
        _delta_tile(b, bk, btab, t, tk, ttab, s, e, u, f, w, d)
        dd = _tile_sums(w, d, e - s, acc)
        if dd != dd:
            _nan_skipping_range(d, e - s, acc)
        else:
            _key_range(d, e - s, keys)
    if keys[0] <= keys[1]:
        acc[3] = min(acc[3], _key_value(keys[0]))
        acc[4] = max(acc[4], _key_value(keys[1]))
    out[:] = acc


@_jit
def _bins_by_edges(d, first, norm, edges, idx):
    """idx[j] = numpy.histogram's bin of d[j] (equal bins over edges; NaN in bin 0): the linear guess, then
    corrected by one against the edges, as numpy does (serial: the edges are looked up). Used when the
    edges are not k·step + first (infinite ranges, other linspace rounding)."""
    nb = edges.size - 1
    for j in range(d.size):
        y = d[j]
        g = (y - first) * norm
        k = 0  # NaN (and a NaN guess, from infinite edges) goes to bin 0
        if g >= nb:
            k = nb - 1
        elif g > 0.0:
            k = int(g)
        if y < edges[k] and k > 0:
            k -= 1
        if k != nb - 1 and y >= edges[k + 1]:
            k += 1
        idx[j] = k


@_jit
def _bins_by_formula(d, first, norm, step, nb, idx):
    """`_bins_by_edges` with edge k computed as k·step + first (what numpy.linspace stores, checked by the
    caller for every edge), so that the loop has no lookups and vectorizes. NaN: bin 0."""
    top = np.float64(nb - 1)
    for j in range(d.size):
        y = d[j]
        kf = np.floor((y - first) * norm)
        kf = kf if kf > 0.0 else 0.0
        kf = kf if kf < top else top
        down = 1.0 if (y < kf * step + first) & (kf > 0.0) else 0.0
        up = 1.0 if (y >= (kf + 1.0) * step + first) & (kf < top) else 0.0
        idx[j] = np.int32(kf - down + up)


@_jit
def _edge_rule(edges):
    """(first edge, bins per unit, bin width, whether every edge is k·width + first) of numpy's edges."""
    nb = edges.size - 1
    first = edges[0]
    norm = nb / (edges[nb] - first)
    step = (edges[nb] - first) / nb
    by_formula = True
    for k in range(nb):
        if k * step + first != edges[k]:
            by_formula = False
    return first, norm, step, by_formula


@_jit
def _bins(d, edges, first, norm, step, by_formula, idx):
    """idx[:d.size] = numpy.histogram's bin of every value of d (NaN: bin 0), by the formula when it holds."""
    if by_formula:
        _bins_by_formula(d, first, norm, step, edges.size - 1, idx)
    else:
        _bins_by_edges(d, first, norm, edges, idx)


@_jit
def hist_weighted(values, weights, edges, counts):
    """counts[k] += weights[j] (1 when weights is empty) for every values[j] in bin k (numpy.histogram's
    rule over edges, as `hist_block`; NaN in bin 0): the histogram of `pattern_block`'s distinct values with
    their counts, and of its overflow values."""
    first, norm, step, by_formula = _edge_rule(edges)
    nb = counts.size
    idx = np.empty(TILE, np.int32)
    ways = np.zeros(HIST_WAYS * nb, np.int64)
    for s in range(0, values.size, TILE):
        e = min(values.size, s + TILE)
        _bins(values[s:e], edges, first, norm, step, by_formula, idx)
        if weights.size:
            for j in range(e - s):
                counts[idx[j]] += weights[s + j]
        else:  # overflow values, one count each: interleaved tables, as `hist_block`
            for j in range(e - s):
                ways[(j & (HIST_WAYS - 1)) * nb + idx[j]] += 1
    for r in range(HIST_WAYS):
        for k in range(nb):
            counts[k] += ways[r * nb + k]


@_jit
def ordered_range(values, keys):
    """keys[0] = min, keys[1] = max of the order-preserving int64 keys of keys[0:2] and of the float64
    values of `values` (NaN skipped): the two passes' order, −0.0 below +0.0."""
    lo = keys[0]
    hi = keys[1]
    for j in range(values.size):
        y = np.float64(values[j])
        if y == y:
            v = _order_key(_bits_of_f64(y))
            lo = min(lo, v)
            hi = max(hi, v)
    keys[0] = lo
    keys[1] = hi


@_jit
def hist_block(b, bk, btab, t, tk, ttab, lo, hi, edges, counts):
    """counts[k] += ΔW values of [lo, hi) in bin k (numpy.histogram's rule over edges; NaN in bin 0)."""
    nb = counts.size
    u = np.empty(TILE, np.uint32)
    f = u.view(np.float32)
    w = np.empty(TILE)
    d = np.empty(TILE)
    idx = np.empty(TILE, np.int32)
    ways = np.zeros(HIST_WAYS * nb, np.int64)
    first, norm, step, by_formula = _edge_rule(edges)
    for s in range(lo, hi, TILE):
        e = min(hi, s + TILE)
        m = e - s
        _delta_tile(b, bk, btab, t, tk, ttab, s, e, u, f, w, d)
        _bins(d[:m], edges, first, norm, step, by_formula, idx)
        for j in range(m):
            ways[(j & (HIST_WAYS - 1)) * nb + idx[j]] += 1
    for r in range(HIST_WAYS):
        for k in range(nb):
            counts[k] += ways[r * nb + k]


@_jit
def _bf16(p):
    """float64 value of the bf16 pattern p (a uint16)."""
    return np.float64(_f32_from_bits(np.uint32(p) << np.uint32(16)))


@_jit
def _bf16_key(d):
    """The bf16 pattern of d when d is exactly that bf16 value, else OVER. The test: float32(d) with its low
    16 bits cleared, back in float64, equals d (a bf16 value d is its own float32; any other d cannot equal
    a bf16 value; NaN equals nothing)."""
    bits = _bits_of_f32(np.float32(d))
    exact = np.float64(_f32_from_bits(bits & np.uint32(0xFFFF0000))) == d
    return np.uint16(bits >> np.uint32(16)) if exact else np.uint16(OVER)


_F16_SUBNORMAL = 2.0**-14
_F16_QUANTUM = 2.0**24
_F16_UNIT = np.float32(2.0**-24)


@_jit
def _f16(p):
    """float64 value of the f16 pattern p by integer operations (vectorizes, unlike a table lookup, and
    never touches a float32 subnormal, which costs a microcode assist): normal exponents rebiased by an
    integer add, subnormals as mantissa · 2^-24, all-ones exponents infinities and NaNs."""
    h = np.uint32(p)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    em = h & np.uint32(0x7FFF)
    normal = (em << np.uint32(13)) + np.uint32(112 << 23)
    tiny = _bits_of_f32(np.float32(em) * _F16_UNIT)
    special = np.uint32(0x7F800000) | ((em & np.uint32(0x3FF)) << np.uint32(13))
    bits = special if em >= np.uint32(0x7C00) else (normal if em >= np.uint32(0x400) else tiny)
    return np.float64(_f32_from_bits(sign | bits))


@_jit
def _f16_key(d):
    """The f16 pattern d would have (float32(d)'s sign, exponent and top 10 mantissa bits, or d · 2^24 below
    2^-14) when that pattern's value is d, else OVER."""
    bits = _bits_of_f32(np.float32(d))
    sign = (bits >> np.uint32(16)) & np.uint32(0x8000)
    a = abs(d)
    normal = (((bits >> np.uint32(23)) & np.uint32(0xFF)) - np.uint32(112)) << np.uint32(10)
    normal |= (bits >> np.uint32(13)) & np.uint32(0x3FF)
    tiny = np.uint32(np.int64(a * _F16_QUANTUM) & 0x3FF) if a < _F16_SUBNORMAL else np.uint32(0)
    p = np.uint16((sign | (tiny if a < _F16_SUBNORMAL else normal)) & np.uint32(0xFFFF))
    return p if _f16(p) == d else np.uint16(OVER)


@_jit
def _decoded(p, kind):
    """float64 value of the 16-bit pattern p of `kind` (KIND_BF16 or KIND_TABLE: F16)."""
    return _bf16(p) if kind == KIND_BF16 else _f16(p)


@_jit(fastmath={"reassoc", "contract"})
def _pattern_tile(bs, ts, kind, sums, keys):
    """sums[:] = Σ d², Σ w², Σ w·d (float64, reassociated: vectorized) over the tile; keys[j] = the pattern
    of d[j] in the tensors' dtype when d[j] is exactly that value, else OVER (`_bf16_key`, `_f16_key`:
    comparisons, nothing there for the fastmath flags to change). `kind` is loop-invariant: LLVM makes a
    loop per kind."""
    dd = bb = bd = 0.0
    for j in range(bs.size):
        w = _decoded(bs[j], kind)
        d = _decoded(ts[j], kind) - w
        dd += d * d
        bb += w * w
        bd += w * d
        keys[j] = _bf16_key(d) if kind == KIND_BF16 else _f16_key(d)
    sums[0] = dd
    sums[1] = bb
    sums[2] = bd


@intrinsic
def _over_word(typingctx, keys, start):
    """The uint64 whose bit i is set when keys[start + i] == OVER (64 uint16 keys from `start`, no bounds
    check): one vector compare of 64 lanes whose <64 x i1> result is the word (on AVX-512, a mask
    register): a fifth of the cost of the loop it replaces, which or-ed 64 shifted flags."""

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, value=args[0])
        lanes = ir.VectorType(ir.IntType(16), 64)
        where = builder.bitcast(builder.gep(arr.data, [args[1]]), lanes.as_pointer())
        hits = builder.icmp_unsigned("==", builder.load(where, align=2), ir.Constant(lanes, [OVER] * 64))
        return builder.bitcast(hits, ir.IntType(64))

    return types.uint64(keys, start), codegen


@_jit
def _overflow_words(keys, m, words):
    """words[g] bit i set when keys[64 g + i] == OVER (64 keys per word)."""
    for g in range(m // 64):
        words[g] = _over_word(keys, g * 64)
    if m % 64:
        g = m // 64
        word = np.uint64(0)
        for i in range(m - g * 64):
            word |= np.uint64(keys[g * 64 + i] == OVER) << np.uint64(i)
        words[g] = word


_UNROLL = 3
_TOP_BIT = np.uint64(1 << 63)


@_jit
def _overflow_positions(words, m, where):
    """where[:c] = the positions of the set bits of words (c returned, in order). The first `_UNROLL` bits of
    a word are found without a branch (a word of a perturbed checkpoint holds about two), the rest in a
    loop: a branch per word instead of one per bit."""
    c = 0
    for g in range((m + 63) // 64):
        word = words[g]
        bits = 0
        for _ in range(_UNROLL):
            where[c + bits] = g * 64 + np.int64(_trailing_zeros(word | _TOP_BIT))
            bits += word != 0
            word &= word - np.uint64(1)
        c += bits
        while word:
            where[c] = g * 64 + np.int64(_trailing_zeros(word))
            c += 1
            word &= word - np.uint64(1)
    return c


@_jit
def _overflow_f32(bs, ts, kind, where, c, out, ext):
    """out[:c] = float32 ΔW at the tile positions where[:c]; ext[0:2] widened to the smallest and largest
    order-preserving key of those ΔW (exact float64 values, NaN skipped), so that the caller never reads the
    overflow again for its extremes. True when float32 holds every one of them exactly (NaN included).
    Branch-free, so the loop runs at the pace of its loads, not of a branch per value; when False the caller
    redoes the tile's overflow value by value (ext is already right)."""
    fits = True
    lo = ext[0]
    hi = ext[1]
    for i in range(c):
        j = where[i]
        d = _decoded(ts[j], kind) - _decoded(bs[j], kind)
        d32 = np.float32(d)
        out[i] = d32
        fits &= (np.float64(d32) == d) | (d != d)
        k = _order_key(_bits_of_f64(d))
        lo = min(lo, k) if d == d else lo
        hi = max(hi, k) if d == d else hi
    ext[0] = lo
    ext[1] = hi
    return fits


@_jit
def pattern_block(b, t, kind, lo, hi, acc, table, over32, over64, used, ext):
    """One pass over [lo, hi) of two BF16 (kind KIND_BF16) or two F16 (KIND_TABLE) tensors of uint16
    patterns: acc[0:3] += Σ ΔW², Σ W², Σ W·ΔW; table[p] += pairs whose ΔW
    is exactly the value of pattern p (same dtype), table[OVER] += the others, whose ΔW
    go to over32[used[0]:] when float32 holds them exactly (NaN included), else to over64[used[1]:] (used
    advanced), and ext[0:2] (int64) is widened to the smallest and largest order-preserving key of those
    (NaN skipped). Stops before a tile whose overflow might not fit and returns its start (the caller makes
    room and calls again from there); returns hi when done."""
    keys = np.empty(TILE, np.uint16)
    words = np.empty(TILE // 64, np.uint64)
    where = np.empty(TILE + _UNROLL, np.int64)
    sums = np.empty(3)
    n32 = used[0]
    n64 = used[1]
    for s in range(lo, hi, TILE):
        e = min(hi, s + TILE)
        m = e - s
        bs = b[s:e]
        ts = t[s:e]
        if n32 + m > over32.size or n64 + m > over64.size:  # room for a tile of overflow on each side
            used[0] = n32
            used[1] = n64
            return s
        _pattern_tile(bs, ts, kind, sums, keys)
        acc[0] += sums[0]
        acc[1] += sums[1]
        acc[2] += sums[2]
        before = table[OVER]
        for j in range(m):
            table[keys[j]] += 1
        if table[OVER] != before:
            _overflow_words(keys, m, words)
            c = _overflow_positions(words, m, where)
            if _overflow_f32(bs, ts, kind, where, c, over32[n32:], ext):
                n32 += c
            else:  # a ΔW float32 does not hold (rare): each value where it fits
                for i in range(c):
                    j = where[i]
                    d = _decoded(ts[j], kind) - _decoded(bs[j], kind)
                    d32 = np.float32(d)
                    if np.float64(d32) == d or d != d:
                        over32[n32] = d32
                        n32 += 1
                    else:
                        over64[n64] = d
                        n64 += 1
    used[0] = n32
    used[1] = n64
    return hi
