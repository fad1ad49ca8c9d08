"""Display-only reductions: block reduction, exact histogram bin merging, series decimation."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.reduce import as_masked_float, block_reduce, downsample_series, merge_bins


def test_as_masked_float_turns_every_non_finite_into_nan() -> None:
    m = as_masked_float([[1, -np.inf], [np.inf, np.nan]])
    assert m[0, 0] == 1.0
    assert np.isnan(m[0, 1]) and np.isnan(m[1, 0]) and np.isnan(m[1, 1])


def test_block_reduce_mean_max_absmax_ignore_masked_cells() -> None:
    m = np.array(
        [
            [1.0, 2.0, -9.0, np.nan, 5.0],
            [3.0, np.nan, 4.0, np.nan, 6.0],
            [np.nan, np.nan, 7.0, 8.0, 1.0],
        ]
    )
    mean = block_reduce(m, 2, 2, "mean")
    assert mean.shape == (2, 3)  # partial last blocks on both axes
    assert mean[0, 0] == pytest.approx(2.0)  # (1 + 2 + 3) / 3, NaN ignored
    assert mean[0, 1] == pytest.approx(-2.5)
    assert mean[0, 2] == pytest.approx(5.5)
    assert np.isnan(mean[1, 0])  # all masked stays masked
    assert block_reduce(m, 2, 2, "max")[0, 1] == 4.0
    assert block_reduce(m, 2, 2, "absmax")[0, 1] == -9.0  # sign kept
    assert block_reduce(m, 1, 1, "max") is m


def test_merge_bins_sums_counts_exactly_and_keeps_old_edges() -> None:
    rng = np.random.default_rng(1)
    for n, max_bins in [(200, 67), (201, 100), (7, 3), (10, 10), (10, 1), (1000, 73)]:
        edges = np.sort(rng.normal(size=n + 1))
        counts = rng.integers(0, 10_000, size=n)
        new_edges, new_counts = merge_bins(edges, counts, max_bins)
        assert new_counts.size <= max_bins
        assert int(new_counts.sum()) == int(counts.sum())
        assert new_edges[0] == edges[0] and new_edges[-1] == edges[-1]
        assert set(new_edges.tolist()) <= set(edges.tolist())
        # each merged count is the sum of the old bins between its edges
        index = np.searchsorted(edges, new_edges)
        for k in range(new_counts.size):
            assert new_counts[k] == counts[index[k] : index[k + 1]].sum()


def test_merge_bins_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        merge_bins(np.arange(5), np.arange(5), 3)


def test_downsample_series_keeps_spikes_and_skips_nan() -> None:
    y = np.zeros(5000)
    y[1234] = 100.0
    y[10] = np.nan
    keep = downsample_series(y, 200)
    assert keep.size <= 200
    assert 1234 in keep
    assert 10 not in keep
    assert np.all(np.diff(keep) > 0)
    small = downsample_series(np.array([1.0, np.nan, 3.0]), 200)
    assert small.tolist() == [0, 2]
