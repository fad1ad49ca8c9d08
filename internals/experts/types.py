"""The result types of the mixture-of-experts analyses, apart from their engines so that they are torch-free.

Why a module of their own: the worker's wire contract (`internals/worker/contract.py`) lists every result type
and the explorer imports it, so these must import nothing heavier than `typing`. The engines
(`internals.experts.weights`, `internals.inference.routing`) return them.
"""

from __future__ import annotations

from typing import TypedDict

from internals.stats_types import TensorStats


class ExpertStats(TypedDict):
    expert: int
    stored: list[str]  # the stored tensors that make up this expert's slice of the parameter
    numel: int
    mean: float | None
    std: float | None
    rms: float | None
    l2_norm: float | None  # Frobenius norm of the expert's slice
    kurtosis: float | None  # excess kurtosis, exact (the expert's own values)
    min: float | None
    max: float | None


class FusedStats(TensorStats):
    """The keys of tensor statistics (docs/contracts.md) for the fused parameter, plus where it comes from."""

    stored: list[str]
    experts: list[ExpertStats]


class RouterSummary(TypedDict):
    name: str  # the router weight parameter
    layer: int | None
    num_experts: int
    row_norms: list[float]  # [expert]: L2 norm of its router row
    cosine: list[list[float]]  # [expert][expert]: cosine similarity of router rows


class SharedExperts(TypedDict):
    """The always-on expert(s) of a layer: module name and, when the architecture gates them, the gate per token."""

    module: str
    gate: list[float] | None  # Qwen2-MoE: sigmoid(shared_expert_gate(x)) per token; None when ungated


class LayerRouting(TypedDict):
    layer: int  # decoder layer index
    router: str  # module name of the router whose output was read
    experts: list[list[int]]  # [token][k]: expert ids in the order the router returned them
    weights: list[list[float]]  # [token][k]: the weight the block scales each chosen expert's output by
    load: list[int]  # [expert]: tokens routed to it
    weight_share: list[float]  # [expert]: its share of the layer's total routing weight
    unused: list[int]  # experts no token chose
    shared: SharedExperts | None


class Routing(TypedDict):
    tokens: list[str]  # readable token labels
    token_ids: list[int]
    num_experts: int
    top_k: int
    layers: list[LayerRouting]  # only the MoE layers
