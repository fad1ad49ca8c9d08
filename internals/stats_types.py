"""The wire record of one tensor's statistics (docs/contracts.md, "Tensor statistics"), apart from the engine.

Why a module of its own: the worker's contract (`internals/worker/contract.py`) and the expert statistics
(`internals/experts/types.py`, whose fused record extends it) both need it, and both must stay torch-free and
import nothing heavier than `typing`; `internals.stats.TensorStats.to_dict()` builds it.
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
