"""The weight-diff kernels against a plain numpy reference: every stored float kind on each side, NaN and
infinities, sizes and ranges that cut tiles anywhere; and through `diff_tensor` on real safetensors files
(several blocks on the worker threads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from internals.diff import _kernels as K
from internals.stats._dtypes import pattern_values

CODES = ("BF16", "F16", "F32", "F64")


def _stored(code: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(array as stored, exact float64 values it holds) of float64 values rounded to the dtype `code`."""
    if code == "BF16":
        pat = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncation is fine here
        return pat, (pat.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if code == "F16":
        with np.errstate(over="ignore"):
            h = values.astype(np.float16)
        return h.view(np.uint16), h.astype(np.float64)
    arr = values.astype(np.float32 if code == "F32" else np.float64)
    return arr, arr.astype(np.float64)


def _kernel_args(code: str, arr: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Read-only, like the memory maps of `internals.diff.weights` (the same compiled signatures)."""
    from internals.diff.weights import NO_TABLE

    arr = arr.view()
    arr.setflags(write=False)
    if code == "BF16":
        return arr, K.KIND_BF16, NO_TABLE
    if code == "F16":
        return arr, K.KIND_TABLE, pattern_values("F16")
    return arr, K.KIND_FLOAT, NO_TABLE


def _reference(w: np.ndarray, t: np.ndarray, bins: int) -> tuple[list[float], np.ndarray, np.ndarray | None]:
    """Σd², Σw², Σw·d, nanmin d, nanmax d; the edges and numpy.histogram's counts (NaN counted in bin 0)."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = t - w
        sums = [float(np.sum(d * d)), float(np.sum(w * w)), float(np.sum(w * d))]
    finite_or_inf = d[~np.isnan(d)]
    lo, hi = (float(finite_or_inf.min()), float(finite_or_inf.max())) if finite_or_inf.size else (math.inf, -math.inf)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        return [*sums, lo, hi], np.zeros(0), None
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(finite_or_inf, bins=edges)
    counts[0] += int(np.isnan(d).sum())
    return [*sums, lo, hi], edges, counts


def _run(cb: str, b: np.ndarray, ct: str, t: np.ndarray, lo: int, hi: int, edges: np.ndarray | None, bins: int):
    out = np.zeros(5)
    K.moments_block(*_kernel_args(cb, b), *_kernel_args(ct, t), lo, hi, out)
    counts = None
    if edges is not None and edges.size:
        counts = np.zeros(bins, np.int64)
        K.hist_block(*_kernel_args(cb, b), *_kernel_args(ct, t), lo, hi, edges, counts)
    return out, counts


def _assert_same(out: np.ndarray, ref: list[float]) -> None:
    for got, want in zip(out, ref):
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-300)


SIZES = [1, 7, K.TILE - 1, K.TILE, K.TILE + 1, 3 * K.TILE + 17]


@pytest.mark.parametrize("cb", CODES)
@pytest.mark.parametrize("ct", CODES)
def test_kernels_equal_numpy_on_every_kind(cb, ct):
    rng = np.random.default_rng(CODES.index(cb) * 4 + CODES.index(ct))
    bins = 17
    for n in SIZES:
        w = rng.standard_normal(n) * 0.02
        t = w + rng.standard_normal(n) * 1e-3
        t[: n // 3] = w[: n // 3]  # a run of unchanged values
        b_arr, wv = _stored(cb, w)
        t_arr, tv = _stored(ct, t)
        for lo, hi in ((0, n), (n // 5, n - n // 7), (min(n, K.TILE - 3), n)):
            if hi <= lo:
                continue
            ref, edges, counts = _reference(wv[lo:hi], tv[lo:hi], bins)
            out, got = _run(cb, b_arr, ct, t_arr, lo, hi, edges if counts is not None else None, bins)
            _assert_same(out, ref)
            if counts is not None:
                assert got.tolist() == counts.tolist(), (cb, ct, n, lo, hi)


def test_values_on_the_edges_are_binned_as_numpy_does():
    """bf16 changes are coarse: many ΔW sit exactly on an edge (the linear guess alone would be off by one)."""
    rng = np.random.default_rng(5)
    n = 5 * K.TILE + 3
    b_arr, wv = _stored("BF16", rng.standard_normal(n) * 0.02)
    steps = rng.integers(-8, 9, n) * 2.0**-10
    t_arr, tv = _stored("F32", wv + steps)  # ΔW = multiples of 2^-10 in [-2^-7, 2^-7]: on the edges
    for bins in (16, 64, 7):
        ref, edges, counts = _reference(wv, tv, bins)
        out, got = _run("BF16", b_arr, "F32", t_arr, 0, n, edges, bins)
        _assert_same(out, ref)
        assert got.tolist() == counts.tolist()
        assert np.isin(tv - wv, edges).mean() > 0.5 or bins == 7


def nan_inf_case(case: str) -> tuple[np.ndarray, np.ndarray]:
    """(base, tuned) float64 values of 2 tiles + 5 with NaN or infinities planted as `case` says."""
    rng = np.random.default_rng(9)
    n = 2 * K.TILE + 5
    w = rng.standard_normal(n) * 0.02
    t = w + rng.standard_normal(n) * 1e-3
    if case == "nan_base":
        w[[3, K.TILE + 1]] = np.nan
    elif case == "nan_tuned":
        t[n - 1] = np.nan
    elif case == "all_nan":
        t[:] = np.nan
    elif case == "inf_tuned":
        t[10] = np.inf
    elif case == "inf_both":
        w[11], t[11] = np.inf, np.inf  # inf − inf: a NaN change
    else:
        w[12], t[K.TILE + 12] = np.inf, -np.inf
    return w, t


@pytest.mark.parametrize("code", ["BF16", "F16", "F32"])
@pytest.mark.parametrize("case", ["nan_base", "nan_tuned", "all_nan", "inf_tuned", "inf_both", "inf_minus_inf"])
def test_nan_and_infinities(code, case):
    """NaN changes: in the sums, skipped by min/max, counted in bin 0; infinite changes: in the sums and the range."""
    w, t = nan_inf_case(case)
    n = w.size
    b_arr, wv = _stored(code, w)
    t_arr, tv = _stored(code, t)
    ref, edges, counts = _reference(wv, tv, 64)
    out, got = _run(code, b_arr, code, t_arr, 0, n, edges if counts is not None else None, 64)
    _assert_same(out, ref)
    if counts is not None:
        assert got.tolist() == counts.tolist()
    if case.startswith("inf") and case != "inf_both":  # an infinite range: the histogram still counts every value
        got = np.zeros(64, np.int64)
        with np.errstate(invalid="ignore"):
            edges = np.linspace(out[3], out[4], 65)
            K.hist_block(*_kernel_args(code, b_arr), *_kernel_args(code, t_arr), 0, n, edges, got)
        assert int(got.sum()) == n


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_diff_tensor_over_many_blocks_equals_numpy(dtype, tmp_path):
    """A tensor of several blocks (worker threads, uneven last block) in real safetensors files."""
    import torch
    from safetensors.torch import save_file

    from internals.diff.matching import TensorPair
    from internals.diff.weights import diff_tensor
    from internals.stats.core import MIN_BLOCK_ELEMENTS
    from internals.weights import WeightStore

    rows, cols = 3 * MIN_BLOCK_ELEMENTS // 100 + 7, 101  # ~1.5M values: three blocks and a remainder
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(rows, cols, generator=g) * 0.02).to(getattr(torch, dtype))
    t = (w.double() + torch.randn(rows, cols, generator=g, dtype=torch.float64) * 1e-3).to(w.dtype)
    save_file({"x": w.contiguous()}, tmp_path / "a.safetensors")
    save_file({"x": t.contiguous()}, tmp_path / "b.safetensors")
    base, tuned = WeightStore([tmp_path / "a.safetensors"]), WeightStore([tmp_path / "b.safetensors"])
    got = diff_tensor(TensorPair(name="x", shape=(rows, cols), base="x", tuned="x"), base, tuned, bins=33)
    wv, tv = w.double().numpy().ravel(), t.double().numpy().ravel()
    ref, edges, counts = _reference(wv, tv, 33)
    assert got["delta_norm"] == pytest.approx(math.sqrt(ref[0]), rel=1e-12)
    assert got["base_norm"] == pytest.approx(math.sqrt(ref[1]), rel=1e-12)
    assert got["max_abs_change"] == max(-ref[3], ref[4])
    assert got["histogram"]["counts"] == counts.tolist()
    assert got["histogram"]["edges"] == edges.tolist()
