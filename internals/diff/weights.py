"""Exact, streamed weight change of one tensor: ‖ΔW‖_F, relative change, cosine, max|ΔW| and ΔW's histogram.

Two stored float tensors (BF16, F16, F32, F64; the two sides may differ) go through numba kernels over the
memory maps (`internals.diff._kernels`: decoded a tile of 1,024 values at a time, vectorized), in blocks on
the statistics engine's worker threads: no copy, no temporary beyond the tiles, memory bounded by
per-thread tables. Two BF16 (or F16) sides are read once (`internals.diff.one_pass`: exact counts of ΔW).
Everything else (an adapter's change, other dtypes) is made in float64 torch blocks of rows
(`CHUNK_ELEMENTS` values, `row_blocks`); for an adapter the block of ΔW is scale · B[rows]·A from the
factors, so the merged weight never exists. Both paths: pass 1 gives the float64 sums ΔW·ΔW, W·W and W·ΔW
(‖W'‖² and W·W' follow from them) and the extremes of ΔW, combined with `math.fsum` per block; pass 2 the
histogram over [min ΔW, max ΔW] (numpy's bins and edge rule; a constant ΔW gets [v - 0.5, v + 0.5]),
skipped when ΔW is constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from internals.diff.matching import TensorPair
from internals.diff.types import Histogram, RankInfo, TensorDiff
from internals.weights import WeightStore

#: Values per block (float64): a few blocks live at once, ~8 MiB each.
CHUNK_ELEMENTS = 1 << 20

__all__ = ["CHUNK_ELEMENTS", "Histogram", "RankInfo", "TensorDiff", "col_blocks", "diff_tensor", "row_blocks"]


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], -1)


def row_blocks(pair: TensorPair, base: WeightStore, tuned: WeightStore | None,
               chunk_elements: int = CHUNK_ELEMENTS,
               dtype: torch.dtype = torch.float64) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(W_base block, ΔW block) in `dtype` (float64 unless asked), by blocks of rows of the base tensor (as stored)."""
    w = _as_rows(base.tensor(pair.base))
    rows, cols = w.shape
    if pair.tuned is not None:
        assert tuned is not None
        other = _as_rows(tuned.tensor(pair.tuned))
    a = b = None
    if pair.lora is not None:
        assert tuned is not None
        a = tuned.tensor(pair.lora.a_name).to(dtype)  # r x in
        b = tuned.tensor(pair.lora.b_name).to(dtype) * pair.lora.scale  # out x r
    if rows == 0 or cols == 0:
        return
    step = max(1, chunk_elements // cols)
    if cols > chunk_elements and rows == 1:  # a long vector: cut it along its only row
        flat_w = w.reshape(-1)
        flat_o = other.reshape(-1) if pair.tuned is not None else None
        for lo in range(0, cols, chunk_elements):
            wb = flat_w[lo:lo + chunk_elements].to(dtype).reshape(1, -1)
            d = (
                (flat_o[lo : lo + chunk_elements].to(dtype).reshape(1, -1) - wb)
                if flat_o is not None
                else torch.zeros_like(wb)
            )
            yield wb, d
        return
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        wb = w[lo:hi].to(dtype)
        if pair.tuned is not None:
            d = other[lo:hi].to(dtype).sub_(wb)
        else:
            d = torch.zeros_like(wb)
        if pair.lora is not None and a is not None and b is not None:
            d = d + (a.T[lo:hi] @ b.T if pair.lora.transpose else b[lo:hi] @ a)
        yield wb, d


def col_blocks(pair: TensorPair, base: WeightStore, tuned: WeightStore | None,
               chunk_elements: int = CHUNK_ELEMENTS, dtype: torch.dtype = torch.float64) -> Iterator[torch.Tensor]:
    """ΔW in `dtype` (float64 unless asked) by blocks of columns (for ΔWΔWᵀ of a wide matrix without holding ΔW)."""
    w = _as_rows(base.tensor(pair.base))
    rows, cols = w.shape
    other = _as_rows(tuned.tensor(pair.tuned)) if pair.tuned is not None and tuned is not None else None
    a = b = None
    if pair.lora is not None and tuned is not None:
        a = tuned.tensor(pair.lora.a_name).to(dtype)
        b = tuned.tensor(pair.lora.b_name).to(dtype) * pair.lora.scale
    step = max(1, chunk_elements // max(1, rows))
    for lo in range(0, cols, step):
        hi = min(cols, lo + step)
        d = (other[:, lo:hi].to(dtype) - w[:, lo:hi].to(dtype)) if other is not None \
            else torch.zeros((rows, hi - lo), dtype=dtype)
        if pair.lora is not None and a is not None and b is not None:
            d = d + (a.T @ b.T[:, lo:hi] if pair.lora.transpose else b @ a[:, lo:hi])
        yield d


_FLOAT_VIEWS = {"F32": np.float32, "F64": np.float64}
#: The table argument of sides decoded without one (read-only like the F16 table: one compiled signature).
NO_TABLE = np.zeros(1)
NO_TABLE.setflags(write=False)


def _decoded(store: WeightStore, name: str) -> tuple[np.ndarray, int, np.ndarray] | None:
    """(flat values as stored, kind of decoding, decoding table or a dummy) for the kernels, or None."""
    from internals.diff._kernels import KIND_BF16, KIND_FLOAT, KIND_TABLE

    code = store.entry(name).dtype
    raw = store.raw(name)
    if code == "BF16":
        return raw.view(np.uint16), KIND_BF16, NO_TABLE
    if code == "F16":
        from internals.stats._dtypes import pattern_values

        return raw.view(np.uint16), KIND_TABLE, pattern_values(code)
    if code in _FLOAT_VIEWS:
        return raw.view(_FLOAT_VIEWS[code]), KIND_FLOAT, NO_TABLE
    return None


def _diff_stored(pair: TensorPair, base: WeightStore, tuned: WeightStore, bins: int,
                 check: Callable[[], None] | None) -> TensorDiff | None:
    """Two full models, float tensors: numba kernels over the memory maps (threads of `internals.stats`).

    Two BF16 or two F16 sides: one read (`internals.diff.one_pass`) when it applies. Otherwise pass 1 (moments and the
    range of ΔW) then pass 2 (the histogram over that range), each block by block on the worker threads; a
    block's second pass reads what the page cache holds."""
    a, b = _decoded(base, pair.base), _decoded(tuned, pair.tuned)  # type: ignore[arg-type]
    if a is None or b is None or a[0].size != b[0].size:
        return None
    from internals.diff._kernels import KIND_BF16, KIND_TABLE, hist_block, moments_block
    from internals.diff.one_pass import one_pass
    from internals.stats.core import _block_size, _run_blocks

    n = a[0].size
    block = _block_size(n, None)
    one = None
    if a[1] == b[1] and a[1] in (KIND_BF16, KIND_TABLE):  # two BF16 or two F16 sides (the table kind is F16)
        one = one_pass(a[0], b[0], block, check, "BF16" if a[1] == KIND_BF16 else "F16")
    count: Callable[[np.ndarray], np.ndarray]
    if one is not None:
        delta2, base2, cross, lo_d, hi_d = one.delta2, one.base2, one.cross, one.lo, one.hi
        count = one.histogram
    else:
        parts = np.zeros((-(-n // block), 5))

        def work_sums(_state, i, lo, hi):
            if check:
                check()
            moments_block(*a, *b, lo, hi, parts[i])

        _run_blocks(n, block, lambda: None, work_sums)
        delta2, base2, cross = (math.fsum(parts[:, k]) for k in range(3))
        lo_d, hi_d = (float(parts[:, 3].min()), float(parts[:, 4].max())) if n else (0.0, 0.0)

        def count(edges: np.ndarray) -> np.ndarray:
            def work_hist(state, i, lo, hi):
                if check:
                    check()
                hist_block(*a, *b, lo, hi, edges, state)

            return np.sum(_run_blocks(n, block, lambda: np.zeros(bins, np.int64), work_hist), axis=0)

    if lo_d == hi_d:
        edges = np.linspace(lo_d - 0.5, hi_d + 0.5, bins + 1)
        counts = np.zeros(bins, np.int64)
        if n:
            counts[int(np.searchsorted(edges, lo_d, side="right")) - 1] = n
    else:
        edges = np.linspace(lo_d, hi_d, bins + 1)
        counts = count(edges)
    return _result(pair, n, delta2, base2, cross, lo_d, hi_d, edges.tolist(), counts.tolist())


def _result(pair: TensorPair, n: int, delta2: float, base2: float, cross: float, lo_d: float, hi_d: float,
            edges: list[float], counts: list[int]) -> TensorDiff:
    tuned2 = max(0.0, base2 + 2 * cross + delta2)  # ‖W + ΔW‖²
    dot = base2 + cross  # <W, W + ΔW>
    delta_norm, base_norm = math.sqrt(delta2), math.sqrt(base2)
    rel: float | None
    if base_norm > 0:
        rel = delta_norm / base_norm
    else:
        rel = 0.0 if delta_norm == 0 else None
    denom = math.sqrt(base2 * tuned2)
    cosine = max(-1.0, min(1.0, dot / denom)) if denom > 0 else None
    return TensorDiff(
        name=pair.name, shape=[int(s) for s in pair.shape], base_norm=base_norm, delta_norm=delta_norm,
        rel_change=rel, cosine=cosine, max_abs_change=max(abs(lo_d), abs(hi_d)),
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]), rank=None,
    )


def diff_tensor(pair: TensorPair, base: WeightStore, tuned: WeightStore | None, bins: int = 64,
                check: Callable[[], None] | None = None, chunk_elements: int = CHUNK_ELEMENTS) -> TensorDiff:
    """Exact weight change of one matched tensor (two streamed passes; one when ΔW is constant).

    Two stored float tensors go through the numba kernels; an adapter's change (and any other dtype) is made
    in float64 torch blocks of rows (`row_blocks`)."""
    if pair.lora is None and pair.tuned is not None and tuned is not None and chunk_elements == CHUNK_ELEMENTS:
        fast = _diff_stored(pair, base, tuned, bins, check)
        if fast is not None:
            return fast
    return diff_tensor_blocks(pair, base, tuned, bins, check, chunk_elements)


def diff_tensor_blocks(pair: TensorPair, base: WeightStore, tuned: WeightStore | None, bins: int = 64,
                       check: Callable[[], None] | None = None, chunk_elements: int = CHUNK_ELEMENTS) -> TensorDiff:
    """`diff_tensor` in float64 torch blocks of rows (adapters, other dtypes; the reference of the kernels)."""
    dd, bb, bd = [], [], []
    lo_d, hi_d, n = math.inf, -math.inf, 0
    for wb, d in row_blocks(pair, base, tuned, chunk_elements):
        if check:
            check()
        fw, fd = wb.reshape(-1), d.reshape(-1)  # dot products: no temporaries
        dd.append(float(torch.dot(fd, fd)))
        bb.append(float(torch.dot(fw, fw)))
        bd.append(float(torch.dot(fw, fd)))
        lo, hi = torch.aminmax(fd)
        lo_d, hi_d = min(lo_d, float(lo)), max(hi_d, float(hi))
        n += d.numel()
    delta2, base2, cross = (math.fsum(x) for x in (dd, bb, bd))
    if n == 0:
        lo_d = hi_d = 0.0
    if lo_d == hi_d:
        edges = torch.from_numpy(np.linspace(lo_d - 0.5, hi_d + 0.5, bins + 1))
        counts = torch.zeros(bins, dtype=torch.int64)
        if n:
            counts[_bin_index(torch.tensor([lo_d], dtype=torch.float64), edges, bins)] += n
    else:
        edges = torch.from_numpy(np.linspace(lo_d, hi_d, bins + 1))
        counts = torch.zeros(bins, dtype=torch.int64)
        for _, d in row_blocks(pair, base, tuned, chunk_elements):
            if check:
                check()
            counts += torch.bincount(_bin_index(d.reshape(-1), edges, bins), minlength=bins)
    return _result(pair, n, delta2, base2, cross, lo_d, hi_d, edges.tolist(), counts.tolist())


def _bin_index(x: torch.Tensor, edges: torch.Tensor, bins: int) -> torch.Tensor:
    """numpy.histogram's bin of each value: equal-width estimate, then corrected against the edges."""
    lo, hi = float(edges[0]), float(edges[-1])
    idx = ((x - lo) * (bins / (hi - lo))).floor().to(torch.int64).clamp_(0, bins - 1)
    idx -= (x < edges[idx]).to(torch.int64)
    idx += ((x >= edges[(idx + 1).clamp(max=bins)]) & (idx != bins - 1)).to(torch.int64)
    return idx.clamp_(0, bins - 1)
