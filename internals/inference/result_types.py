"""The result types of the "activations and causes" analyses, torch-free so that the wire contract
(`internals/worker/contract.py`, which the explorer imports) can name them without importing torch.

The engine modules (`activations.py`, `patching.py`, `attribution.py`, `lens.py`) return these and re-export
them; each field is described in its engine module's docstring.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class MassiveActivation(TypedDict):
    value: float
    layer: str | int  # "embed" or a layer index
    position: int
    channel: int
    token: str
    ratio_to_median: float | None  # |value| / median |value| of the residual stream at that layer (None: median 0)
    is_massive: bool  # meets the rule (see internals/inference/activations.py)


class MassiveChannel(TypedDict):
    channel: int
    layers: list[str | int]  # where it is massive at some position
    positions: list[int]  # where it is massive at some layer
    max_abs: float


class ActivationsResult(TypedDict):
    tokens: list[str]
    token_ids: list[int]
    layers: list[str | int]  # "embed", 0, 1, ...
    residual_norm: np.ndarray  # float32 [layers + 1, T]
    massive: list[MassiveActivation]  # the TOP largest |values|, largest first
    massive_channels: list[MassiveChannel]  # largest first
    sink_share: np.ndarray  # float32 [layers, heads]; NaN for a one-token prompt
    rule: str


class PatchingResult(TypedDict):
    clean_tokens: list[str]
    corrupt_tokens: list[str]
    target: str
    target_id: int
    corrupt_top: str
    corrupt_top_id: int
    clean_logit_diff: float
    corrupt_logit_diff: float
    normalized: bool  # False when clean and corrupt give the same logit difference: grids hold raw changes
    residual: np.ndarray | None  # float32 [layers, T]
    attention: np.ndarray | None  # float32 [layers, T]
    mlp: np.ndarray | None  # float32 [layers, T]
    heads: np.ndarray | None  # float32 [layers, heads]


class AttributionResult(TypedDict):
    tokens: list[str]
    target: str
    target_id: int
    logit: float  # the target's logit at the last position (before any final soft-capping)
    bias: float  # final norm bias and LM head bias
    embedding: float
    attention: list[float]  # per layer: what the whole attention block adds (heads + output bias)
    heads: list[list[float]]  # per layer, per head
    mlp: list[float]  # per layer


class LensReadout(TypedDict):
    layer: int
    stage: str  # "attention": the residual after the layer's attention block; "layer": after the whole layer


class LensBest(TypedDict):
    token_id: int
    label: str
    layer: int
    stage: str
    prob: float
    rank: int


class TokenTracks(TypedDict):
    token_ids: list[int]
    labels: list[str]
    position: int
    readouts: list[LensReadout]  # in order: layer 0 after attention, layer 0 after the layer, layer 1 ...
    ranks: np.ndarray  # int64 [readouts, tokens]: 1 = the top token at that readout
    probs: np.ndarray  # float32 [readouts, tokens]
    best: list[LensBest]  # per token, the readout where its probability is highest
