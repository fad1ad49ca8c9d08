"""Block reduction of a big matrix to a small grid of exact block means (numpy only, torch-free).

One function for every "too big to draw" matrix: the worker's weight-matrix preview (mean |x| of each block)
and the binning of long attention maps (each query block's mean attention mass on each key block). Rows are
read one band at a time through a callable, so a caller keeps only one band (not a float copy of the whole
matrix) in memory and can check for cancellation between bands. The explorer may import this module too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ReadRows = Callable[[int, int], np.ndarray]


def block_edges(length: int, blocks: int) -> list[int]:
    """blocks+1 increasing positions from 0 to length splitting it into nearly equal, non-empty blocks
    (blocks is clipped to 1..length)."""
    blocks = max(1, min(int(blocks), int(length)))
    return [int(round(i * length / blocks)) for i in range(blocks + 1)]


def block_means(read_rows: ReadRows, row_edges: Sequence[int], col_edges: Sequence[int], *, sum_cols: bool = False,
                check: Callable[[], None] | None = None) -> np.ndarray:
    """float32 [R, C]: entry (i, j) is the exact mean of the block rows row_edges[i]:[i+1] × cols col_edges[j]:[j+1].

    `read_rows(start, stop)` returns those rows as a 2-D numpy array (any float dtype; take |x| there for a
    magnitude map). With `sum_cols`, each entry is the sum over the block's columns of the row mean instead
    (rows of an attention map keep summing to 1). Sums are taken in float64. `check()` runs before each band.
    """
    cols = np.asarray(col_edges, dtype=np.int64)
    widths = np.diff(cols)
    if (widths <= 0).any() or (np.diff(np.asarray(row_edges)) <= 0).any():
        raise ValueError("block edges must be strictly increasing")
    out = np.empty((len(row_edges) - 1, len(cols) - 1), dtype=np.float32)
    for i in range(len(row_edges) - 1):
        if check is not None:
            check()
        start, stop = int(row_edges[i]), int(row_edges[i + 1])
        band = np.asarray(read_rows(start, stop))
        column_sums = band.sum(axis=0, dtype=np.float64)[cols[0]:cols[-1]]
        sums = np.add.reduceat(column_sums, cols[:-1] - cols[0])
        out[i] = sums / (stop - start) if sum_cols else sums / (widths * (stop - start))
    return out
