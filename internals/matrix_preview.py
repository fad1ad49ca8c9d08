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

import numpy as np

from internals.dtypes import BY_CODE, FLOAT_MATRIX_CODES, as_float32
from internals.errors import UserError
from internals.reduce import block_edges, block_means
from internals.weights import WeightStore
from internals.worker.contract import MatrixPreview


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
    r_edges, c_edges = block_edges(n_rows, rows), block_edges(n_cols, cols)
    values = block_means(lambda a, b: np.abs(as_float32(typed[a:b], entry.dtype)), r_edges, c_edges, check=check)
    return {"name": name or stored_name, "shape": [int(s) for s in entry.shape], "values": values,
            "row_edges": r_edges, "col_edges": c_edges, "reduce": "mean |x|"}
