"""internals.stats: every statistic against an independent numpy computation on the decoded values."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from internals.errors import UserError
from internals.stats import (
    PatternCounts,
    compute_tensor_stats,
    count_patterns,
    histogram_from_counts,
    readable_dtype,
    tensor_histogram,
)

QS = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
CONTRACT_KEYS = ["name", "shape", "dtype", "numel", "mean", "std", "min", "max", "abs_mean", "rms", "l2_norm",
                 "zeros", "nan", "inf", "quantiles", "kurtosis", "histogram"]


# ------------------------------------------------------------------------------------------------
# independent reference: decode to float64, then plain numpy


def decode(raw: np.ndarray, code: str) -> np.ndarray:
    """float64 values of raw little-endian bytes, decoded without internals.stats."""
    b = np.ascontiguousarray(raw).view(np.uint8)
    with np.errstate(invalid="ignore"):
        if code == "BF16":
            return (b.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        if code == "BOOL":
            return (b != 0).astype(np.float64)
        np_dtype = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "U8": "u1", "I16": "<i2", "U16": "<u2",
                    "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8"}[code]
        return b.view(np_dtype).astype(np.float64)


def reference(values: np.ndarray, bins: int = 64) -> dict:
    f = values[np.isfinite(values)]
    out = {"numel": values.size, "nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum()),
           "zeros": int((f == 0).sum())}
    counts, edges = np.histogram(f, bins=bins)
    out["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    if f.size == 0:
        out.update(mean=None, std=None, min=None, max=None, abs_mean=None, rms=None, l2_norm=None, kurtosis=None,
                   quantiles={k: None for k in QS})
        return out
    mean = f.mean()
    constant = f.min() == f.max()
    m2 = 0.0 if constant else ((f - mean) ** 2).mean()
    out.update(
        mean=float(f.min()) if constant else float(mean), std=math.sqrt(m2), min=float(f.min()),
        max=float(f.max()), abs_mean=float(np.abs(f).mean()), rms=float(np.sqrt((f * f).mean())),
        l2_norm=float(np.sqrt((f * f).sum())),
        kurtosis=None if m2 == 0 else float(((f - mean) ** 4).mean() / m2**2 - 3.0),
        quantiles={k: float(v) for k, v in zip(QS, np.quantile(f, list(QS.values())))},
    )
    return out


def close(a, b, rel=1e-9, scale=0.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(abs(a), abs(b), scale) + 1e-300


def check(raw: np.ndarray, code: str, shape=None, bins: int = 64, **kw) -> dict:
    raw = np.ascontiguousarray(raw)
    shape = raw.shape if shape is None else shape
    got = compute_tensor_stats(raw.reshape(-1).view(np.uint8), code, shape, bins=bins, name="t", **kw).to_dict()
    exp = reference(decode(raw.reshape(-1), code), bins)
    json.dumps(got, allow_nan=False)  # JSON-safe
    assert list(got) == CONTRACT_KEYS
    assert got["name"] == "t" and got["shape"] == list(shape) and got["dtype"] == readable_dtype(code)
    for key in ("numel", "nan", "inf", "zeros"):
        assert got[key] == exp[key], key
    # order statistics and bins are exact
    assert got["min"] == exp["min"] and got["max"] == exp["max"]
    assert got["quantiles"] == exp["quantiles"]
    assert got["histogram"] == exp["histogram"]
    assert sum(got["histogram"]["counts"]) == got["numel"] - got["nan"] - got["inf"]
    # moments: float64 sums in another order
    scale = exp["rms"] or 0.0
    for key in ("mean", "std"):
        assert close(got[key], exp[key], scale=scale), (key, got[key], exp[key])
    for key in ("abs_mean", "rms", "l2_norm"):
        assert close(got[key], exp[key]), (key, got[key], exp[key])
    assert close(got["kurtosis"], exp["kurtosis"], rel=1e-7), (got["kurtosis"], exp["kurtosis"])
    return got


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 bit patterns (round to nearest even; NaN kept NaN)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, np.float32))
    r[nan] = 0x7FC0
    return r


def weights_like(n: int, seed: int, std: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * std).astype(np.float32)
    if n >= 20:
        x[rng.integers(0, n, 3)] = rng.choice([8.0, -6.5, 12.25], 3)  # outliers
    return x


def specials(x: np.ndarray) -> np.ndarray:
    """Put NaN, +-Inf, 0.0 and -0.0 at a few places (including the first and last element)."""
    x = x.copy()
    x[0] = np.nan
    x[-1] = np.inf
    x[len(x) // 2] = -np.inf
    x[len(x) // 3] = 0.0
    x[len(x) // 5] = -0.0
    x[len(x) // 7] = np.nan
    return x


# ------------------------------------------------------------------------------------------------
# 16-bit floats


@pytest.mark.parametrize("n", [1, 2, 3, 64, 1000, 100_003])
def test_bf16_matches_numpy(n):
    check(to_bf16(weights_like(n, n)), "BF16", chunk_elements=997)


@pytest.mark.parametrize("n", [10, 5000, 70_001])
def test_bf16_with_nan_inf_zeros(n):
    got = check(to_bf16(specials(weights_like(n, 7 + n))), "BF16", chunk_elements=1024)
    assert got["nan"] == 2 and got["inf"] == 2 and got["zeros"] >= 2


def test_bf16_bins_and_shape():
    x = to_bf16(weights_like(6 * 1536, 3)).reshape(6, 1536)
    got = check(x, "BF16", bins=7)
    assert len(got["histogram"]["edges"]) == 8 and got["shape"] == [6, 1536]
    check(x, "BF16", bins=1)


def test_bf16_every_pattern_once():
    # all 65,536 patterns: NaNs (both signs, all payloads), infinities, subnormals, both zeros
    got = check(np.arange(65536, dtype=np.uint16), "BF16", chunk_elements=4099)
    assert got["zeros"] == 2 and got["inf"] == 2 and got["nan"] == 2 * 127


@pytest.mark.parametrize("n", [1, 999, 50_000])
def test_f16_matches_numpy(n):
    x = specials(weights_like(n, 11)) if n > 10 else weights_like(n, 11)
    check(x.astype(np.float16), "F16", chunk_elements=4096)


def test_f16_every_pattern_once():
    got = check(np.arange(65536, dtype=np.uint16).view(np.float16), "F16")
    assert got["zeros"] == 2 and got["inf"] == 2


def test_exactness_in_counts_not_sampling():
    # one outlier among many values must show up in max and in the last histogram bin
    x = np.zeros(300_001, np.uint16)
    x[123_456] = to_bf16(np.array([3.0]))[0]
    got = check(x, "BF16", chunk_elements=65_536)
    assert got["max"] == 3.0 and got["histogram"]["counts"][-1] == 1


# ------------------------------------------------------------------------------------------------
# wide floats: chunk boundaries, radix levels, ties


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_f32_chunk_boundaries(chunk):
    n = 7001 if chunk == 1 else 30_011
    check(specials(weights_like(n, chunk)), "F32", chunk_elements=chunk)


def test_f32_values_in_one_top16_bucket():
    # 1 + k*eps share their top 16 bits: quantiles come from the second radix level
    x = (np.float32(1.0) + np.arange(5000, dtype=np.float32) % 97 * np.finfo(np.float32).eps).astype(np.float32)
    np.random.default_rng(0).shuffle(x)
    check(x, "F32", chunk_elements=333)


def test_f32_ties_negative_and_wide_range():
    rng = np.random.default_rng(5)
    x = rng.choice(np.array([-3.5, -1e-30, -0.0, 0.0, 2.0, 1e30, 7.25], np.float32), 20_000)
    check(x, "F32", chunk_elements=4096)
    check(np.concatenate([x, np.float32([-3.4e38, 3.4e38, 1e-45])]), "F32", chunk_elements=4096)


@pytest.mark.parametrize("chunk", [3, 4096, None])
def test_f64_matches_numpy(chunk):
    check(specials(np.random.default_rng(2).standard_normal(20_000) * 3.0), "F64", chunk_elements=chunk)


def test_f64_four_radix_levels():
    x = 1.0 + (np.arange(3000) % 211) * np.finfo(np.float64).eps  # same top 48 bits for many values
    x = np.concatenate([x, -x[:100], [2.0**-1074, 0.0]])
    np.random.default_rng(1).shuffle(x)
    check(x, "F64", chunk_elements=250)


# ------------------------------------------------------------------------------------------------
# integers and bool


@pytest.mark.parametrize("code,np_dtype", [("I8", np.int8), ("U8", np.uint8), ("I16", np.int16), ("U16", np.uint16),
                                           ("I32", np.int32), ("U32", np.uint32), ("I64", np.int64),
                                           ("U64", np.uint64)])
def test_integers(code, np_dtype):
    info = np.iinfo(np_dtype)
    rng = np.random.default_rng(4)
    x = rng.integers(max(info.min, -1000), min(info.max, 1000), 10_007).astype(np_dtype)
    x[:3] = [info.min, info.max, 0]
    got = check(x, code, chunk_elements=1000)
    assert got["dtype"] == np.dtype(np_dtype).name


def test_bool():
    x = np.random.default_rng(0).random(5003) < 0.3
    got = check(x.view(np.uint8), "BOOL", shape=(5003,))
    assert got["dtype"] == "bool" and got["min"] == 0.0 and got["max"] == 1.0


def test_float8():
    torch = pytest.importorskip("torch")
    patterns = np.arange(256, dtype=np.uint8)
    for code, tdt in (("F8_E4M3", torch.float8_e4m3fn), ("F8_E5M2", torch.float8_e5m2)):
        expect = torch.from_numpy(patterns.copy()).view(tdt).double().numpy()
        pc = count_patterns(patterns, code)
        np.testing.assert_array_equal(pc.values, expect)  # decoding table (NaN == NaN here)
        got = compute_tensor_stats(patterns, code, (256,)).to_dict()
        exp = reference(expect)
        assert got["quantiles"] == exp["quantiles"] and got["histogram"] == exp["histogram"]
        assert got["nan"] == exp["nan"] and got["inf"] == exp["inf"] and close(got["std"], exp["std"])


# ------------------------------------------------------------------------------------------------
# degenerate tensors


@pytest.mark.parametrize("code,raw", [
    ("BF16", to_bf16(np.full(1000, 0.5, np.float32))),
    ("F16", np.full(77, -2.0, np.float16)),
    ("F32", np.full(10_001, 0.1, np.float32)),
    ("F64", np.full(999, 1e-3)),
    ("I32", np.full(5, 7, np.int32)),
])
def test_constant_tensor(code, raw):
    got = check(raw, code, chunk_elements=100)
    assert got["std"] == 0.0 and got["kurtosis"] is None and got["min"] == got["max"] == got["mean"]
    assert got["histogram"]["edges"][0] == got["min"] - 0.5 and max(got["histogram"]["counts"]) == raw.size


@pytest.mark.parametrize("code", ["BF16", "F16", "F32", "F64", "I64", "U8"])
def test_single_element(code):
    raw = {"BF16": to_bf16(np.float32([-1.5])), "F16": np.float16([3.0]), "F32": np.float32([2.5]),
           "F64": np.float64([-7.0]), "I64": np.int64([42]), "U8": np.uint8([200])}[code]
    got = check(raw, code, shape=(1, 1))
    assert got["min"] == got["max"] == got["quantiles"]["p50"] and got["std"] == 0.0


def test_scalar_shape():
    for code, raw in (("BF16", to_bf16(np.float32([0.25]))), ("F32", np.float32([0.25]))):
        got = check(raw, code, shape=())
        assert got["shape"] == [] and got["numel"] == 1 and got["mean"] == 0.25


@pytest.mark.parametrize("code", ["BF16", "F32", "F64", "I32", "BOOL"])
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_empty(code, shape):
    got = compute_tensor_stats(np.zeros(0, np.uint8), code, shape, bins=8).to_dict()
    json.dumps(got, allow_nan=False)
    assert got["numel"] == 0 and got["shape"] == list(shape)
    assert all(got[k] is None for k in ("mean", "std", "min", "max", "abs_mean", "rms", "l2_norm", "kurtosis"))
    assert all(v is None for v in got["quantiles"].values())
    assert got["histogram"] == {"edges": np.linspace(0, 1, 9).tolist(), "counts": [0] * 8}


@pytest.mark.parametrize("code", ["BF16", "F16", "F32", "F64"])
def test_all_nan_and_inf(code):
    x = np.array([np.nan, np.inf, -np.inf, np.nan], np.float32)
    raw = {"BF16": to_bf16(x), "F16": x.astype(np.float16), "F32": x, "F64": x.astype(np.float64)}[code]
    got = check(raw, code)
    assert got["nan"] == 2 and got["inf"] == 2 and got["mean"] is None and got["quantiles"]["p50"] is None


# ------------------------------------------------------------------------------------------------
# inputs, errors, threads


def test_buffer_kinds_and_unaligned_memmap(tmp_path):
    x = specials(weights_like(40_000, 9))
    expect = compute_tensor_stats(x.view(np.uint8), "F32", x.shape).to_dict()
    assert compute_tensor_stats(memoryview(x.tobytes()), "float32", x.shape).to_dict() == expect
    assert compute_tensor_stats(x.tobytes(), "torch.float32", x.shape).to_dict() == expect
    path = tmp_path / "t.bin"
    path.write_bytes(b"\0" + x.tobytes() + to_bf16(x).tobytes())  # odd offset: unaligned for both dtypes
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    same_up_to_rounding(compute_tensor_stats(mm[1:1 + x.nbytes], "F32", x.shape, chunk_elements=3001).to_dict(),
                        expect)
    assert compute_tensor_stats(mm[1:1 + x.nbytes], "F32", x.shape).to_dict() == expect
    bf = compute_tensor_stats(mm[1 + x.nbytes:], "BF16", x.shape, chunk_elements=3001).to_dict()
    assert bf == compute_tensor_stats(to_bf16(x).view(np.uint8), "BF16", x.shape).to_dict()


def test_errors():
    with pytest.raises(UserError, match="dtype C64 is not supported for statistics"):
        compute_tensor_stats(np.zeros(8, np.uint8), "C64", (1,))
    with pytest.raises(UserError, match="bytes"):
        compute_tensor_stats(np.zeros(7, np.uint8), "BF16", (4,))
    with pytest.raises(UserError, match="bins"):
        compute_tensor_stats(np.zeros(8, np.uint8), "BF16", (4,), bins=0)
    with pytest.raises(UserError, match="range"):
        count_patterns(np.zeros(8, np.uint8), "BF16").histogram(4, range=(1.0, 0.0))
    with pytest.raises(UserError, match="range"):
        tensor_histogram(np.zeros(8, np.uint8), "F32", (2,), 4, range=(0.0, float("inf")))


def same_up_to_rounding(a: dict, b: dict) -> None:
    """Equal, except moments may differ in the last bits (float sums in other blocks)."""
    for key in a:
        if key in ("mean", "std", "abs_mean", "rms", "l2_norm", "kurtosis"):
            assert close(a[key], b[key], rel=1e-12, scale=a["rms"]), key
        else:
            assert a[key] == b[key], key


def test_results_do_not_depend_on_threads_or_blocks(monkeypatch):
    x = specials(weights_like(200_000, 21))
    b = to_bf16(x)
    inputs = ((x, "F32"), (b, "BF16"), (x.astype(np.float64), "F64"))
    base = [compute_tensor_stats(a.view(np.uint8), c, a.shape).to_dict() for a, c in inputs]
    for threads in ("1", "3", "2"):  # same blocks, any thread count: identical
        monkeypatch.setenv("NUMBA_NUM_THREADS", threads)
        assert [compute_tensor_stats(a.view(np.uint8), c, a.shape).to_dict() for a, c in inputs] == base
        for chunk in (4999, 1 << 16):
            again = [compute_tensor_stats(a.view(np.uint8), c, a.shape, chunk_elements=chunk).to_dict()
                     for a, c in inputs]
            for g, e in zip(again, base):
                same_up_to_rounding(g, e)
            assert again[1] == base[1]  # 16-bit: counts only, bit-identical


def test_set_threads_and_fork():
    from internals.stats import set_threads, threads

    x = to_bf16(weights_like(100_000, 61))
    base = compute_tensor_stats(x.view(np.uint8), "BF16", x.shape, chunk_elements=10_000).to_dict()
    set_threads(3)
    try:
        assert threads() == 3
        assert compute_tensor_stats(x.view(np.uint8), "BF16", x.shape, chunk_elements=10_000).to_dict() == base
    finally:
        set_threads(None)
    if hasattr(os, "fork"):  # the worker pool is recreated in a forked child instead of hanging
        import warnings

        r, w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads alive
            pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ok = compute_tensor_stats(x.view(np.uint8), "BF16", x.shape, chunk_elements=10_000).to_dict() == base
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        assert os.read(r, 1) == b"1"
        os.waitpid(pid, 0)
        os.close(r)


def test_concurrent_calls_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    xs = [to_bf16(weights_like(300_000, s)) for s in range(4)]
    serial = [compute_tensor_stats(x.view(np.uint8), "BF16", x.shape, chunk_elements=50_000).to_dict() for x in xs]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(lambda x: compute_tensor_stats(x.view(np.uint8), "BF16", x.shape,
                                                         chunk_elements=50_000).to_dict(), xs))
    assert par == serial


# ------------------------------------------------------------------------------------------------
# pattern counts: re-binning without reading the tensor again


def test_pattern_counts_rebin_quantile_and_sum():
    x = specials(weights_like(50_000, 31))
    b = to_bf16(x)
    vals = decode(b, "BF16")
    fin = vals[np.isfinite(vals)]
    pc = count_patterns(b.view(np.uint8), "BF16", b.shape, name="w")
    assert isinstance(pc, PatternCounts) and pc.numel == b.size and pc.counts.sum() == b.size
    assert pc.stats(16).to_dict() == compute_tensor_stats(b.view(np.uint8), "BF16", b.shape, 16, "w").to_dict()
    edges, counts = pc.histogram(10, range=(-0.01, 0.02))
    ref_counts, ref_edges = np.histogram(fin, 10, range=(-0.01, 0.02))
    np.testing.assert_array_equal(edges, ref_edges)
    np.testing.assert_array_equal(counts, ref_counts)
    assert pc.quantile(0.123) == np.quantile(fin, 0.123)
    both = pc + count_patterns(b[:1000].view(np.uint8), "BF16")
    assert both.numel == b.size + 1000
    assert both.stats().quantiles["p50"] == np.quantile(np.concatenate([fin, vals[:1000][np.isfinite(vals[:1000])]]), 0.5)


def test_histogram_from_counts_and_tensor_histogram():
    v = np.array([0.5, -1.0, 2.0, 3.0])
    c = np.array([2, 1, 0, 5])
    edges, counts = histogram_from_counts(v, c, 4)
    ref_counts, ref_edges = np.histogram(np.repeat(v, c), 4)
    np.testing.assert_array_equal(edges, ref_edges)
    np.testing.assert_array_equal(counts, ref_counts)
    x = specials(weights_like(20_000, 41))
    fin = x[np.isfinite(x)].astype(np.float64)
    for code, raw in (("F32", x), ("F64", x.astype(np.float64)), ("BF16", None)):
        if raw is None:  # bf16: compare with its own decoded values
            raw = to_bf16(x)
            values = decode(raw, "BF16")
            values = values[np.isfinite(values)]
        else:
            values = fin
        for rng in (None, (-0.03, 0.01)):
            edges, counts = tensor_histogram(raw.view(np.uint8), code, raw.shape, 12, rng, chunk_elements=999)
            ref_counts, ref_edges = np.histogram(values, 12, range=rng)
            np.testing.assert_array_equal(edges, ref_edges)
            np.testing.assert_array_equal(counts, ref_counts)
    empty = tensor_histogram(np.zeros(0, np.uint8), "F32", (0,), 4)
    np.testing.assert_array_equal(empty[0], np.linspace(0, 1, 5))


# ------------------------------------------------------------------------------------------------
# packaging


def test_import_is_light():
    code = "import sys, internals.stats; print('torch' in sys.modules, 'numba' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_jit_falls_back_without_cache_location():
    from internals.stats import _kernels

    ns: dict = {}
    exec("def f(a):\n    return a + 1\n", ns)  # no source file: numba has no cache locator for it
    f = _kernels._jit(ns["f"])
    assert f(1) == 2


def test_naive_baseline_agrees():
    pytest.importorskip("torch")
    from internals.stats import naive_stats

    x = to_bf16(specials(weights_like(20_000, 51)))
    ours = compute_tensor_stats(x.view(np.uint8), "BF16", x.shape, 16).to_dict()
    naive = naive_stats(x.view(np.uint8), "BF16", x.shape, 16)
    assert list(naive) == CONTRACT_KEYS
    for key in ("numel", "nan", "inf", "zeros", "min", "max"):
        assert naive[key] == ours[key]
    for key in ("mean", "std", "rms", "abs_mean", "kurtosis"):
        assert naive[key] == pytest.approx(ours[key], rel=1e-4, abs=1e-7)
    assert naive["quantiles"] == pytest.approx(ours["quantiles"])
    assert sum(naive["histogram"]["counts"]) == sum(ours["histogram"]["counts"])


def test_respects_numba_num_threads_env():
    code = ("import numpy as np; from internals.stats.core import threads; "
            "from internals.stats import compute_tensor_stats as c; "
            "print(threads(), c(np.zeros(10, np.uint16).view(np.uint8), 'BF16', (10,)).zeros)")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["1", "10"]


@pytest.mark.parametrize("offset", [0, 2, 4, 6])
def test_bf16_any_even_offset(offset):
    # 16-bit data is counted as aligned 64-bit words plus a head and a tail
    x = to_bf16(specials(weights_like(1001, offset)))
    buf = np.zeros(x.nbytes + 16, np.uint8)
    buf[offset:offset + x.nbytes] = x.view(np.uint8)
    raw = buf[offset:offset + x.nbytes]
    got = compute_tensor_stats(raw, "BF16", x.shape, chunk_elements=333).to_dict()
    assert got == compute_tensor_stats(x.view(np.uint8), "BF16", x.shape).to_dict()
    check(x, "BF16")


# ------------------------------------------------------------------------------------------------
# many tensors of one file: counted as ranges of its memory map, read through the file or from the map


def _pattern_file(tmp_path):
    """A file of 8/16-bit tensors back to back at odd and even offsets, odd sizes, NaN/inf patterns:
    [(byte offset, nbytes, code, pattern array)], and the path."""
    rng = np.random.default_rng(77)
    tensors = [
        ("BF16", to_bf16(specials(weights_like(100_003, 1)))),
        ("I8", rng.integers(-128, 128, 999).astype(np.int8)),  # odd size: the next tensor starts odd
        ("F16", specials(weights_like(70_001, 2)).astype(np.float16)),
        ("BF16", to_bf16(specials(weights_like(5, 3)))),
        ("U8", rng.integers(0, 256, 1).astype(np.uint8)),
        ("BF16", to_bf16(weights_like(300_000, 4))),
        ("BOOL", rng.random(77) < 0.5),
        ("F16", np.arange(65536, dtype=np.uint16).view(np.float16)),  # every pattern once
        ("BF16", to_bf16(specials(weights_like(1537, 5)))),
    ]
    blob, out, off = bytearray(b"\x07" * 8), [], 8
    for code, arr in tensors:
        data = np.ascontiguousarray(arr).view(np.uint8).tobytes()
        out.append((off, len(data), code, np.ascontiguousarray(arr)))
        blob += data
        off += len(data)
    path = tmp_path / "patterns.bin"
    path.write_bytes(bytes(blob))
    return path, out


@pytest.mark.parametrize("how", ["read", "read-small-buffer", "mapped", "copied", "maps-cheaply"])
def test_many_tensors_of_one_file_against_naive(tmp_path, monkeypatch, how):
    """Every way a file's tensors are counted: read through the file (a fresh map), from the map (already
    mapped, or a file the kernel caches in 2 MiB folios), from a copy in memory."""
    from internals.stats import core, count_patterns_many

    path, layout = _pattern_file(tmp_path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    calls = []
    monkeypatch.setattr(core, "CHEAP_MAP_MIN_BYTES", 0)  # asked for this small file too
    monkeypatch.setattr("internals.stats.page_cache.maps_cheaply",
                        lambda x: calls.append(x.size) or how == "maps-cheaply")  # whatever this kernel does
    monkeypatch.setattr(core, "_CHEAP_MAPS", {})
    read_file = []
    monkeypatch.setattr(core, "_count_read", lambda *a, _f=core._count_read: read_file.append(1) or _f(*a))
    if how == "read-small-buffer":
        monkeypatch.setattr(core, "READ_BYTES", 64)  # pieces over many reads, short final reads
    if how == "mapped":
        np.add.reduce(mm)  # the pages are now mapped in this process: counted from the map
    source = np.array(mm) if how == "copied" else mm
    first = core._Buffer.locate(np.asarray(source[8:]), {})[0]
    mapped = core._mapped_in(first.x, [(0, first.x.size)])
    assert (first.path is not None) == (how != "copied")
    assert mapped == (how in ("mapped", "copied"))  # a fresh map is read through the file
    items = [(source[off:off + n], code, arr.shape, f"t{i}") for i, (off, n, code, arr) in enumerate(layout)]
    for chunk in (None, 997, 100_000):  # spans cut tensors into pieces whose counts are added
        got = count_patterns_many(items, chunk_elements=chunk)
        for pc, (_off, _n, _code, arr) in zip(got, layout):
            bits = 16 if arr.itemsize == 2 else 8
            naive = np.bincount(arr.reshape(-1).view(np.uint16 if bits == 16 else np.uint8), minlength=1 << bits)
            np.testing.assert_array_equal(pc.counts, naive)
            assert pc.numel == arr.size and pc.shape == arr.shape
    assert bool(read_file) == how.startswith("read")  # the file was read only where the map is costly
    assert len(calls) == (how in ("read", "read-small-buffer", "maps-cheaply"))  # asked once per file and map
    for pc, (_off, _n, code, arr) in zip(count_patterns_many(items), layout):
        stats = pc.stats(32).to_dict()
        exp = reference(decode(arr.reshape(-1).view(np.uint8), code), 32)
        for key in ("numel", "nan", "inf", "zeros", "min", "max", "quantiles", "histogram"):
            assert stats[key] == exp[key], (code, key)
        assert close(stats["std"], exp["std"], scale=exp["rms"] or 0.0) and close(stats["rms"], exp["rms"])


def test_file_shorter_than_its_tensors_is_a_user_error(tmp_path):
    from internals.stats import count_patterns

    path, layout = _pattern_file(tmp_path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    off, n, code, arr = layout[5]
    view = mm[off:off + n]
    os.truncate(path, off + n // 2)  # the map is never touched: the read finds the file too short
    with pytest.raises(UserError, match="shorter than its header says"):
        count_patterns(view, code, arr.shape)


def test_sparse_and_dense_pattern_counts_agree():
    b = to_bf16(specials(weights_like(20_000, 8)))
    dense = np.bincount(b, minlength=65536)
    from_dense = PatternCounts("BF16", dense, b.shape, "t")
    nz = np.flatnonzero(dense)[::-1]  # any order
    from_sparse = PatternCounts("BF16", None, b.shape, "t", patterns=nz, pattern_counts=dense[nz])
    assert from_dense.stats(16).to_dict() == from_sparse.stats(16).to_dict()
    np.testing.assert_array_equal(from_sparse.counts, dense)
    assert from_sparse.nbytes < dense.nbytes // 10  # held sparse
    with pytest.raises(ValueError):
        PatternCounts("BF16", None, patterns=[70000], pattern_counts=[1])
