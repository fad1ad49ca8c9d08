"""The naive way to get tensor statistics, as a user would write it with torch (benchmark baseline only).

Per tensor: decode to float32 with `.float()`, drop non-finite values, torch reductions for the moments,
`torch.histc` for the histogram and numpy's quantile (torch.quantile refuses tensors above 16M elements).
Not exact for wide dtypes in the same way as `compute_tensor_stats` (float32 arithmetic); never used by
the engine.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from internals.dtypes import torch_dtype as torch_dtype_of
from internals.stats._dtypes import dtype_info
from internals.stats.core import QUANTILES, _as_bytes


def naive_stats(raw: Any, dtype: str, shape: tuple[int, ...], bins: int = 64, name: str = "",
                quantiles: bool = True) -> dict[str, Any]:
    """Same JSON item as `compute_tensor_stats(...).to_dict()`, computed the straightforward way.

    quantiles=False leaves the quantiles out (None): the cheap part of the naive way alone.
    """
    import torch

    info = dtype_info(dtype)
    torch_dtype = torch_dtype_of(info.code)
    a = _as_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only buffers
        t = torch.frombuffer(memoryview(a), dtype=torch_dtype)  # type: ignore[arg-type]  # numpy's stubs lack __buffer__ if a.size else torch.empty(0, dtype=torch_dtype)
    x = t.reshape(shape).float().flatten()
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    x = x[torch.isfinite(x)]
    n = x.numel()
    out: dict[str, Any] = {"name": name, "shape": list(shape), "dtype": info.name, "numel": int(t.numel())}
    if n == 0:
        out.update(mean=None, std=None, min=None, max=None, abs_mean=None, rms=None, l2_norm=None, zeros=0,
                   nan=nan, inf=inf, quantiles={k: None for k, _ in QUANTILES}, kurtosis=None,
                   histogram={"edges": np.linspace(0, 1, bins + 1).tolist(), "counts": [0] * bins})
        return out
    mean = x.mean()
    std = x.std(correction=0)
    lo, hi = float(x.min()), float(x.max())
    qs = np.quantile(x.numpy(), [q for _, q in QUANTILES]) if quantiles else [None] * len(QUANTILES)
    var = float(std) ** 2
    kurt = float(((x - mean) ** 4).mean()) / var**2 - 3.0 if var > 0 else None
    first, last = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
    hist = torch.histc(x, bins=bins, min=first, max=last)
    sq = float((x * x).sum())
    out.update(
        mean=float(mean), std=float(std), min=lo, max=hi, abs_mean=float(x.abs().mean()),
        rms=math.sqrt(sq / n), l2_norm=float(torch.linalg.vector_norm(x)), zeros=int((x == 0).sum()),
        nan=nan, inf=inf, quantiles={k: None if v is None else float(v) for (k, _), v in zip(QUANTILES, qs)}, kurtosis=kurt,
        histogram={"edges": torch.linspace(first, last, bins + 1).tolist(), "counts": [int(c) for c in hist]},
    )
    return out
