"""The wire record of one tensor's statistics, apart from the engine so that it is torch-free and import-free.

Why a module of its own: the worker's contract (`internals/worker/contract.py`) and the result types of other
analyses (a fused expert parameter's statistics, `internals/experts/types.py`) both build on this record, and the
contract imports those result types, so the record must live below both.
"""

from __future__ import annotations

from typing import TypedDict


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


class TensorStats(TypedDict):
    """One item of `stats --json` and `client.tensor_stats(name, bins)`."""

    name: str
    shape: list[int]
    dtype: str
    numel: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    abs_mean: float | None
    rms: float | None
    l2_norm: float | None
    zeros: int
    nan: int
    inf: int
    quantiles: dict[str, float | None]
    kurtosis: float | None
    histogram: Histogram
