"""A weight matrix reduced to at most rows x cols blocks (mean |x| per block), from the memory map, no torch.

The explorer draws a heat map of each matrix; this reads the stored bytes band by band (one band of rows
per output row) straight from the safetensors memory map, so no torch import and no copy of the matrix.
Values are decoded to float32 exactly as torch's `.to(torch.float32)` does (BF16 by a 16-bit shift);
block sums are accumulated in float64, so the result is at least as exact as the float32 sums of the
torch version it replaces (they agree bit for bit whenever those float32 sums are exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypedDict

import numpy as np

from internals.dtypes import BY_CODE, FLOAT_MATRIX_CODES, as_float32
from internals.errors import UserError
from internals.weights import WeightStore


class MatrixPreview(TypedDict):
    name: str
    shape: list[int]
    values: np.ndarray  # float32 [rows, cols]: mean |x| of each block
    row_edges: list[int]  # block i covers matrix rows row_edges[i]:row_edges[i+1]
    col_edges: list[int]
    reduce: str  # "mean |x|"


def block_edges(n: int, parts: int) -> np.ndarray:
    """`parts` near-equal blocks of range(n): the edges numpy.linspace gives (as the explorer expects)."""
    return np.linspace(0, n, parts + 1).astype(int)


def matrix_preview(store: WeightStore, stored_name: str, rows: int = 64, cols: int = 128,
                   check: Callable[[], None] | None = None, *, name: str | None = None) -> MatrixPreview:
    """Mean |x| over each of at most rows x cols blocks of a stored floating-point matrix.

    A tensor of more than two dimensions is seen as (prod(shape[:-1]), shape[-1]). `check()` is called
    between bands (raise in it to cancel); `name` is echoed in the result (default: the stored name).
    """
    entry = store.entry(stored_name)
    if len(entry.shape) < 2 or entry.dtype not in FLOAT_MATRIX_CODES:
        raise UserError(f"{name or stored_name} is not a floating-point matrix (shape {list(entry.shape)})")
    info = BY_CODE[entry.dtype]
    n_cols = int(entry.shape[-1])
    n_rows = math.prod(entry.shape[:-1])
    typed = np.asarray(store.raw(stored_name)).view(info.numpy).reshape(n_rows, n_cols)
    rows, cols = max(1, min(rows, n_rows)), max(1, min(cols, n_cols))
    out = np.zeros((rows, cols), dtype=np.float32)
    r_edges = block_edges(n_rows, rows)
    c_edges = block_edges(n_cols, cols)
    widths = np.diff(c_edges)
    for i in range(rows):
        if check is not None:
            check()
        lo, hi = int(r_edges[i]), int(r_edges[i + 1])
        band = np.abs(as_float32(typed[lo:hi], entry.dtype))
        sums = np.add.reduceat(band.sum(axis=0, dtype=np.float64), c_edges[:-1])
        out[i] = sums / (widths * (hi - lo))
    return {"name": name or stored_name, "shape": [int(s) for s in entry.shape], "values": out,
            "row_edges": r_edges.tolist(), "col_edges": c_edges.tolist(), "reduce": "mean |x|"}
