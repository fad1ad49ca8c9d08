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

Kinds of a side: `KIND_BF16` (uint16 patterns), `KIND_TABLE` (uint16 patterns + float64 table: F16),
`KIND_FLOAT` (float32/float64 values). Compiled once per machine per pair of array types (cached by numba).
"""

from __future__ import annotations

import numpy as np

from internals.stats._kernels import _jit

KIND_BF16 = 0
KIND_TABLE = 1
KIND_FLOAT = 2

#: Values per tile: the tile buffers (5 x 8 KiB) stay in L1.
TILE = 1024
#: Interleaved histogram tables (a run of equal bins would otherwise wait on one counter per value).
HIST_WAYS = 4

_SIGN_OFF = np.int64(0x7FFFFFFFFFFFFFFF)
# Argument order of the kernels: (base, base_kind, base_table, tuned, tuned_kind, tuned_table, lo, hi, ...).


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
        v = k[j]
        v = v ^ ((v >> 63) & _SIGN_OFF)
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
    k[0] = key ^ ((key >> 63) & _SIGN_OFF)
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
def hist_block(b, bk, btab, t, tk, ttab, lo, hi, edges, counts):
    """counts[k] += ΔW values of [lo, hi) in bin k (numpy.histogram's rule over edges; NaN in bin 0)."""
    nb = counts.size
    u = np.empty(TILE, np.uint32)
    f = u.view(np.float32)
    w = np.empty(TILE)
    d = np.empty(TILE)
    idx = np.empty(TILE, np.int32)
    ways = np.zeros(HIST_WAYS * nb, np.int64)
    first = edges[0]
    norm = nb / (edges[nb] - first)
    step = (edges[nb] - first) / nb
    by_formula = True
    for k in range(nb):
        if k * step + first != edges[k]:
            by_formula = False
    for s in range(lo, hi, TILE):
        e = min(hi, s + TILE)
        m = e - s
        _delta_tile(b, bk, btab, t, tk, ttab, s, e, u, f, w, d)
        if by_formula:
            _bins_by_formula(d[:m], first, norm, step, nb, idx)
        else:
            _bins_by_edges(d[:m], first, norm, edges, idx)
        for j in range(m):
            ways[(j & (HIST_WAYS - 1)) * nb + idx[j]] += 1
    for r in range(HIST_WAYS):
        for k in range(nb):
            counts[k] += ways[r * nb + k]
