"""Exact, display-only reductions: fit data the engine sent onto a terminal-sized canvas.

Why: a terminal has ~100×40 cells; a 512-token attention matrix, a 200-bin histogram or a long series
must be reduced to what fits *without inventing values or dropping mass*: heatmap pixels are block
reductions over whole matrix blocks, histogram bins are merged by summing adjacent counts exactly.
These functions only see the small arrays the engine sends (never model tensors).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np

BlockReduce = Literal["mean", "max", "absmax"]


def as_masked_float(matrix: object) -> np.ndarray:
    """A 2-D float64 copy where every non-finite value (NaN, ±inf: masked cells) is NaN."""
    array = np.array(matrix, dtype=np.float64, copy=True)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {array.shape}")
    array[~np.isfinite(array)] = np.nan
    return array


def block_reduce(matrix: np.ndarray, row_factor: int, col_factor: int, how: BlockReduce) -> np.ndarray:
    """Reduce each `row_factor × col_factor` block to one value, ignoring NaN (masked) cells.

    Blocks start at multiples of the factors; the last block of an axis may be partial. A block
    whose cells are all masked stays NaN. `how`: "mean" (average of the visible cells), "max"
    (largest value: keeps a single sharp attention peak visible) or "absmax" (the signed value of
    largest magnitude: keeps outlier weights of either sign visible).
    """
    if row_factor <= 1 and col_factor <= 1:
        return matrix
    rows, cols = matrix.shape
    out_rows, out_cols = math.ceil(rows / row_factor), math.ceil(cols / col_factor)
    padded = np.full((out_rows * row_factor, out_cols * col_factor), np.nan)
    padded[:rows, :cols] = matrix
    blocks = padded.reshape(out_rows, row_factor, out_cols, col_factor).transpose(0, 2, 1, 3)
    cells = blocks.reshape(out_rows, out_cols, row_factor * col_factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        if how == "mean":
            return np.nanmean(cells, axis=2)
        if how == "max":
            return np.nanmax(cells, axis=2)
        if how == "absmax":
            magnitude = np.where(np.isnan(cells), -1.0, np.abs(cells))
            pick = np.argmax(magnitude, axis=2)[..., np.newaxis]
            return np.take_along_axis(cells, pick, axis=2)[..., 0]
    raise ValueError(f"unknown block reduction {how!r}")


def merge_bins(edges: np.ndarray, counts: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge groups of `k` adjacent histogram bins (k = ceil(n / max_bins)) by summing counts.

    Exact: the total count is unchanged and every new edge is one of the old edges. The last group
    may hold fewer than `k` bins.
    """
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(counts)
    if edges.shape != (counts.shape[0] + 1,):
        raise ValueError(f"need len(edges) == len(counts) + 1, got {edges.shape[0]} and {counts.shape[0]}")
    n = counts.shape[0]
    max_bins = max(1, int(max_bins))
    if n <= max_bins:
        return edges, counts
    k = math.ceil(n / max_bins)
    starts = np.arange(0, n, k)
    merged = np.add.reduceat(counts, starts)
    new_edges = np.append(edges[starts], edges[-1])
    return new_edges, merged


def downsample_series(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points of `y` to draw: all of them, or per bucket its min and max (in order).

    Min/max decimation keeps spikes (a kurtosis outlier at one layer) that striding would drop.
    NaN points are never chosen.
    """
    y = np.asarray(y, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(y))
    if finite.size <= max(2, max_points):
        return finite
    buckets = np.array_split(finite, max(1, max_points // 2))
    keep: list[int] = []
    for bucket in buckets:
        if bucket.size == 0:
            continue
        values = y[bucket]
        lo, hi = int(bucket[np.argmin(values)]), int(bucket[np.argmax(values)])
        keep.extend(sorted({lo, hi}))
    return np.asarray(keep, dtype=np.intp)
