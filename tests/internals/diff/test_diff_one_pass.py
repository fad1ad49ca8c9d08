"""The one-read weight diff of two BF16 tensors (`internals.diff.one_pass`) against the two passes and numpy:
identical histograms and extremes, the same sums; pairs with equal and different exponents, changes that
need more than 8 bits (the overflow values, float32 and float64), a full overflow buffer (the two passes
take over), NaN, infinities, ±0, sizes that cut tiles anywhere, and a large tensor of real safetensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_diff_kernels import _reference, _run, _stored, nan_inf_case

from internals.diff import _kernels as K
from internals.diff import one_pass as P
from internals.stats._dtypes import pattern_values


@pytest.fixture
def any_size(monkeypatch):
    """The one pass for tensors of every size (it normally leaves small ones to the two passes)."""
    monkeypatch.setattr(P, "MIN_ELEMENTS", 1)


def _pat(values: np.ndarray, code: str = "BF16") -> tuple[np.ndarray, np.ndarray]:
    """(read-only uint16 patterns, their exact float64 values) of values rounded to `code`."""
    pat, exact = _stored(code, values)
    pat.setflags(write=False)
    return pat, exact


def _one(b: np.ndarray, t: np.ndarray, block: int = 1 << 19, code: str = "BF16") -> P.OnePass | None:
    return P.one_pass(b, t, block, None, code)


def _assert_like_two_passes(b: np.ndarray, t: np.ndarray, bins: int = 64, block: int = 1 << 19,
                            code: str = "BF16") -> P.OnePass:
    """one_pass equals the two kernels (and numpy): same extremes (sign of zero included), same counts."""
    one = _one(b, t, block, code)
    assert one is not None
    two, _ = _run(code, b, code, t, 0, b.size, None, bins)
    for got, want in zip((one.delta2, one.base2, one.cross), two[:3]):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-300) or (math.isnan(got) and math.isnan(want))
    assert (one.lo, one.hi) == (two[3], two[4])
    assert (math.copysign(1, one.lo), math.copysign(1, one.hi)) == (math.copysign(1, two[3]), math.copysign(1, two[4]))
    if one.lo != one.hi:
        edges = np.linspace(one.lo, one.hi, bins + 1)
        _, counts = _run(code, b, code, t, 0, b.size, edges, bins)
        assert one.histogram(edges).tolist() == counts.tolist()
    return one


def _overflow_count(b: np.ndarray, t: np.ndarray, code: str = "BF16") -> int:
    table = np.zeros(K.BF16_KEYS, np.uint32)
    used = np.zeros(2, np.int64)
    kind = K.KIND_BF16 if code == "BF16" else K.KIND_TABLE
    end = K.pattern_block(b, t, kind, 0, b.size, np.zeros(3), table,
                          np.empty(b.size, np.float32), np.empty(b.size), used, np.array([2**63 - 1, -2**63]))
    assert end == b.size and int(table.sum()) == b.size
    assert int(table[K.OVER]) == int(used.sum())
    return int(table[K.OVER])


@pytest.mark.parametrize("m", [1, 63, 64, 65, 1000, K.TILE])
def test_overflow_words_are_the_bits_of_the_overflow_keys(m):
    """The vector compare's words (`_over_word`, whole words) and the tail loop: bit i of word g is set
    exactly when key 64 g + i is OVER, at the first and last bit of a word too."""
    rng = np.random.default_rng(m)
    keys = rng.integers(0, K.OVER, K.TILE, dtype=np.uint16)  # never OVER unless put there
    hits = rng.random(K.TILE) < 0.1
    hits[[0, 63, 64, K.TILE - 1]] = True
    keys[hits] = K.OVER
    words = np.zeros(K.TILE // 64, np.uint64)
    K._overflow_words(keys, m, words)
    want = [sum(1 << i for i in range(64) if g * 64 + i < m and hits[g * 64 + i]) for g in range(-(-m // 64))]
    assert [int(w) for w in words[: len(want)]] == want


@pytest.mark.parametrize("code", ["BF16", "F16"])
@pytest.mark.parametrize("n", [1, 7, K.TILE - 1, K.TILE, K.TILE + 1, 3 * K.TILE + 17, 200_003])
def test_random_values_equal_two_passes(n, code, any_size):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n) * 0.02
    t = w + rng.standard_normal(n) * 1e-3
    t[: n // 3] = w[: n // 3]  # unchanged values: ΔW = 0
    b_pat, wv = _pat(w, code)
    t_pat, tv = _pat(t, code)
    one = _assert_like_two_passes(b_pat, t_pat, block=max(1, n // 3), code=code)
    if n > 1:
        ref, edges, counts = _reference(wv, tv, 17)
        assert one.histogram(edges).tolist() == counts.tolist()
        assert (one.lo, one.hi) == (ref[3], ref[4])


def test_equal_exponents_never_overflow_and_wide_changes_do(any_size):
    """Same exponent: ΔW has at most 8 significant bits, a bf16 value. Exponents apart: ΔW may need more
    (1 + 2^-7 → 4: 2.9921875 = 10.1111111b, 9 bits), or not (1 + 2^-7 → 2: 0.9921875, 7 bits)."""
    rng = np.random.default_rng(1)
    mant = rng.integers(0, 128, (2, 5000))
    exps = rng.integers(-20, 5, 5000)
    w = (1 + mant[0] / 128) * 2.0 ** exps
    sign = rng.choice([-1.0, 1.0], 5000)
    w, t = sign * w, sign * (1 + mant[1] / 128) * 2.0 ** exps  # same sign and exponent on both sides
    b_pat, _ = _pat(w)
    t_pat, _ = _pat(t)
    assert _overflow_count(b_pat, t_pat) == 0
    _assert_like_two_passes(b_pat, t_pat)

    wide_b, _ = _pat(np.array([1 + 2**-7, 1 + 2**-7, 1.5, 2.0**-30, -3.0, 2.0**-60]))
    wide_t, _ = _pat(np.array([4.0, 2.0, 1.5, 1.0, 2.0**-50, 1.0]))
    # 9 bits; 7 bits; 0; 1 − 2^-30 and 3 + 2^-50 (exact in float64, not float32: the float64 overflow);
    # 1 − 2^-60 is 1.0 in float64 (as the two passes compute it): a bf16 value
    assert _overflow_count(wide_b, wide_t) == 3
    one = _assert_like_two_passes(wide_b, wide_t, bins=7)
    assert sorted(v for part in one.overflow for v in part.tolist()) == [1 - 2.0**-30, 2.9921875, 3 + 2.0**-50]
    assert [part.dtype for part in one.overflow] == [np.float32, np.float64]


def test_f16_decoding_by_bits_equals_the_pattern_table():
    """`_f16` (integer operations and a product) gives every f16 pattern's value, NaNs as NaN."""
    import numba

    decode = numba.njit(lambda p: np.array([K._f16(x) for x in p]))
    got = decode(np.arange(1 << 16, dtype=np.uint16))
    want = pattern_values("F16")
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_f16_subnormal_wide_and_out_of_range_changes(any_size):
    """F16: changes below 2^-14 (f16 subnormals) are counted under their pattern; changes needing more than
    11 bits, or beyond f16's range (65504 − (−65504)), keep their exact values."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal(5000) * 2.0**-12
    t = w + rng.integers(-40, 41, 5000) * 2.0**-24  # same exponent mostly, changes down to one f16 quantum
    b_pat, _ = _pat(w, "F16")
    t_pat, tv = _pat(t, "F16")
    one = _assert_like_two_passes(b_pat, t_pat, code="F16")
    d = tv - _pat(w, "F16")[1]
    assert np.sum(np.abs(d[d != 0]) < 2.0**-14) > 1000  # many subnormal changes, all counted
    with np.errstate(over="ignore"):
        not_f16 = int(np.sum(d.astype(np.float16).astype(np.float64) != d))  # numpy's view of "not an f16"
    assert _overflow_count(b_pat, t_pat, "F16") == not_f16
    wide_b, _ = _pat(np.array([1 + 2**-10, -65504.0, 2.0**-20, 1.0]), "F16")
    wide_t, _ = _pat(np.array([4.0, 65504.0, 1.0, 1.0]), "F16")
    # 4 − (1 + 2^-10): 12 bits; 131008: beyond f16; 1 − 2^-20: 21 bits; 0
    assert _overflow_count(wide_b, wide_t, "F16") == 3
    one = _assert_like_two_passes(wide_b, wide_t, bins=5, code="F16")
    assert sorted(v for part in one.overflow for v in part.tolist()) == [1 - 2.0**-20, 3 - 2.0**-10, 131008.0]


def test_overflow_buffers_grow_then_give_up(monkeypatch, any_size):
    """Overflow beyond the first buffer: the buffers double and the figures stay exact; beyond the limit,
    None (the two passes take over) and `diff_tensor` still gives numpy's figures."""
    rng = np.random.default_rng(2)
    n = 20 * K.TILE + 5
    w = rng.standard_normal(n) * 2.0 ** rng.integers(-12, -6, n)  # tiny weights, larger changes: wide ΔW
    t = w + rng.standard_normal(n) * 1e-2
    b_pat, wv = _pat(w)
    t_pat, tv = _pat(t)
    over = _overflow_count(b_pat, t_pat)
    assert over > 4 * K.TILE
    monkeypatch.setattr(P, "_START", K.TILE)
    _assert_like_two_passes(b_pat, t_pat, block=n // 2)
    monkeypatch.setattr(P, "OVERFLOW_LIMIT", 2 * K.TILE)
    assert _one(b_pat, t_pat, block=n // 2) is None
    assert all(int(table.sum()) == 0 for table in P._FREE_TABLES)  # the tables went back zeroed

    from internals.diff.matching import TensorPair
    from internals.diff.weights import diff_tensor

    store = _ArrayStore({"w": b_pat}), _ArrayStore({"w": t_pat})
    got = diff_tensor(TensorPair(name="w", shape=(n,), base="w", tuned="w"), *store, bins=33)  # type: ignore[arg-type]
    ref, edges, counts = _reference(wv, tv, 33)
    assert got["histogram"]["counts"] == counts.tolist()
    assert got["max_abs_change"] == max(-ref[3], ref[4])


@pytest.mark.parametrize("code", ["BF16", "F16"])
@pytest.mark.parametrize("case", ["nan_base", "nan_tuned", "all_nan", "inf_tuned", "inf_both"])
def test_nan_and_infinities(case, code, any_size):
    """NaN: in the sums, skipped by the extremes, counted in bin 0, as the two passes do. An infinite change
    or NaN only: None (the two passes' rules for infinite edges apply)."""
    w, t = nan_inf_case(case)
    b_pat, _ = _pat(w, code)
    t_pat, _ = _pat(t, code)
    if case in ("all_nan", "inf_tuned"):
        assert _one(b_pat, t_pat, code=code) is None
    else:
        one = _assert_like_two_passes(b_pat, t_pat, code=code)
        assert math.isnan(one.delta2)


@pytest.mark.parametrize("code", ["BF16", "F16"])
def test_signed_zeros(code, any_size):
    """+0 − +0 = +0 and −0 − +0 = −0 are two table entries: the extremes keep the two passes' order (−0.0
    below +0.0) and both land in one bin; all-zero changes are one constant."""
    b_pat, _ = _pat(np.array([0.0, 0.0, 0.5, 0.25, 1.0]), code)
    t_pat, _ = _pat(np.array([-0.0, 0.0, 0.75, 0.25, 1.0]), code)
    one = _assert_like_two_passes(b_pat, t_pat, bins=4, code=code)
    assert math.copysign(1, one.lo) == -1 and one.hi == 0.25
    zeros_b, _ = _pat(np.array([0.0, -0.0, 1.0] * 700), code)
    zeros_t, _ = _pat(np.array([-0.0, 0.0, 1.0] * 700), code)
    one = _assert_like_two_passes(zeros_b, zeros_t, code=code)
    assert one.lo == one.hi == 0


class _Cancelled(Exception):
    pass


def test_tables_go_back_zeroed_and_cancelled_ones_are_dropped(any_size):
    """After a tensor the workers' tables are zero again; a cancelled tensor's tables (a worker may still be
    counting) never go back to the free list."""
    rng = np.random.default_rng(4)
    b_pat, _ = _pat(rng.standard_normal(4 * K.TILE))
    t_pat, _ = _pat(rng.standard_normal(4 * K.TILE))
    _one(b_pat, t_pat)
    free = list(P._FREE_TABLES)
    assert free and all(int(table.sum()) == 0 for table in free)

    def cancel() -> None:
        raise _Cancelled

    with pytest.raises(_Cancelled):
        P.one_pass(b_pat, t_pat, K.TILE, cancel)
    assert len(P._FREE_TABLES) < len(free)
    assert all(int(table.sum()) == 0 for table in P._FREE_TABLES)


def test_large_bf16_tensor_takes_the_one_pass(tmp_path, monkeypatch):
    """`diff_tensor` over real safetensors files of several blocks reads two BF16 tensors once, with
    numpy's figures."""
    import torch
    from safetensors.torch import save_file

    from internals.diff.matching import TensorPair
    from internals.diff.weights import diff_tensor
    from internals.weights import WeightStore

    taken = []
    real = P.one_pass
    monkeypatch.setattr(P, "one_pass", lambda *a: taken.append(real(*a)) or taken[-1])
    rows, cols = 1537, 1031  # ~1.6M values: blocks on both threads, uneven tiles
    g = torch.Generator().manual_seed(8)
    w = (torch.randn(rows, cols, generator=g) * 0.02).bfloat16()
    t = (w.double() + torch.randn(rows, cols, generator=g, dtype=torch.float64) * 1e-3).bfloat16()
    save_file({"x": w}, tmp_path / "a.safetensors")
    save_file({"x": t}, tmp_path / "b.safetensors")
    base, tuned = WeightStore([tmp_path / "a.safetensors"]), WeightStore([tmp_path / "b.safetensors"])
    got = diff_tensor(TensorPair(name="x", shape=(rows, cols), base="x", tuned="x"), base, tuned, bins=64)
    assert len(taken) == 1 and taken[0] is not None
    assert sum(part.size for part in taken[0].overflow) > 0
    ref, edges, counts = _reference(w.double().numpy().ravel(), t.double().numpy().ravel(), 64)
    assert got["histogram"]["counts"] == counts.tolist()
    assert got["histogram"]["edges"] == edges.tolist()
    assert got["max_abs_change"] == max(-ref[3], ref[4])
    assert got["delta_norm"] == pytest.approx(math.sqrt(ref[0]), rel=1e-12)
    assert got["base_norm"] == pytest.approx(math.sqrt(ref[1]), rel=1e-12)


class _ArrayStore:
    """The two methods of `WeightStore` that `diff_tensor` uses for stored tensors, over in-memory arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def entry(self, name: str):
        return type("Entry", (), {"dtype": "BF16"})()

    def raw(self, name: str) -> np.ndarray:
        return self.arrays[name].view(np.uint8)
