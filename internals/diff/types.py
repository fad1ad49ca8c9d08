"""The result types of the diff engine (docs/contracts.md), torch-free so that the worker's registry, the
contract docs and the explorer can name them without importing torch. The engine modules re-export them."""

from __future__ import annotations

from typing import Literal, TypedDict


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


class RankInfo(TypedDict):
    singular_values: list[float]  # descending, at most 64
    stable_rank: float
    effective_rank_90: int
    effective_rank_99: int


class TensorDiff(TypedDict):
    """One item of `diff --json` "tensors" (docs/contracts.md)."""

    name: str
    shape: list[int]
    base_norm: float
    delta_norm: float
    rel_change: float | None  # delta_norm / base_norm; None when the base is all zeros and ΔW is not
    cosine: float | None  # cosine(W_base, W_tuned); None when either is all zeros
    max_abs_change: float
    histogram: Histogram
    rank: RankInfo | None


class GroupDiff(TypedDict):
    tensors: int
    base_norm: float
    delta_norm: float
    rel_change: float | None


class DiffAggregates(TypedDict):
    by_layer: list[GroupDiff | None]  # index = layer; None for a layer with no compared tensor
    by_component: dict[str, GroupDiff]


class WeightDiff(TypedDict):
    """The `diff --json` object without "behaviour" (docs/contracts.md)."""

    base: str
    tuned: str
    kind: Literal["full", "adapter"]
    tensors: list[TensorDiff]
    only_in_base: list[str]
    only_in_tuned: list[str]
    aggregates: DiffAggregates


class TokenChange(TypedDict):
    token: str
    token_id: int
    delta_logprob: float


class BehaviourDiff(TypedDict):
    """The "behaviour" object of `diff --json --prompt` (docs/contracts.md)."""

    tokens: list[str]
    kl: list[float]  # per position, nats
    rose: list[TokenChange]  # at the last position, largest Δ log p first
    fell: list[TokenChange]  # at the last position, most negative Δ log p first
    residual_cosine: list[list[float]]  # [hidden-state index (0 = embeddings)][position]
