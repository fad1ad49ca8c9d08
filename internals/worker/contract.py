"""The wire contract between the worker and its clients: every request and every result, as types.

Results are `TypedDict`s: plain dicts at run time (JSON-able; numpy arrays allowed as values, which the codec in
`internals/worker/protocol.py` carries as raw bytes), so the explorer reads them as before while a type checker
and the docs test (`tests/internals/worker/test_contract_docs.py`) hold every side to the same keys.
Requests are frozen dataclasses: their fields are the parameters an operation takes, with the defaults it uses;
the registry (`internals/worker/operations.py`) checks a request's dict against them before the operation runs.
Torch-free and numpy-only: the explorer imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np

from internals.diff.types import BehaviourDiff, DiffAggregates, GroupDiff, RankInfo, TensorDiff, TokenChange, WeightDiff
from internals.experts.types import ExpertStats, FusedStats, LayerRouting, RouterSummary, Routing, SharedExperts
from internals.inference.chat_template import ChatRendering, ChatToken
from internals.inference.result_types import (
    ActivationsResult,
    AttributionResult,
    LensBest,
    LensReadout,
    MassiveActivation,
    MassiveChannel,
    PatchingResult,
    TokenTracks,
)
from internals.spectrum import EsdHistogram, TensorSpectrum
from internals.spectrum.model import ExpertSpectra, ModelSpectra, SpectrumBrief
from internals.spectrum.powerlaw import PowerLawFit
from internals.stats_types import Histogram, TensorStats  # re-exported: the wire record of tensor statistics

#: A sink head: its mean attention weight on the first token, over the query positions >= 1, is above this.
SINK_SHARE = 0.5

# --- weights: summary, tree, statistics, previews -------------------------------------------------------


class NormInfo(TypedDict):
    kind: str
    eps: float | None


class RopeInfo(TypedDict):
    theta: float | None
    scaling: Any


class LayerSummary(TypedDict):
    index: int
    parameters: int
    attention: int
    mlp: int
    norm: int


class ModelSummary(TypedDict):
    """`summary --json` and `client.summary()`: see docs/contracts.md for each key's meaning."""

    path: str
    source_kind: str
    layout: str
    architecture: str | None
    model_type: str | None
    num_layers: int | None
    hidden_size: int | None
    num_attention_heads: int | None
    num_key_value_heads: int | None
    gqa_group_size: int | None
    head_dim: int | None
    intermediate_size: int | None
    vocab_size: int | None
    max_position_embeddings: int | None
    activation: str | None
    mlp_kind: str | None
    norm: NormInfo | None
    rope: RopeInfo | None
    attention_bias: dict[str, bool]
    num_experts: int | None
    num_experts_per_token: int | None
    stored_dtype: str | None
    tie_word_embeddings: bool | None
    embeddings_shared: bool | None
    total_parameters: int
    parameters_by_component: dict[str, int]
    layers: list[LayerSummary]
    memory_bytes: dict[str, int]
    kv_cache_bytes_per_token: dict[str, int] | None


TreeNode = TypedDict("TreeNode", {
    "name": str, "parent": str | None, "kind": Literal["module", "parameter"], "class": str,
    "shape": list[int], "numel": int, "dtype": str | None, "component": str | None, "layer": int | None,
    "tied_to": str | None,
}, total=False)
TreeNode.__doc__ = "One module or parameter of `client.tree()` (a list in depth-first order; the root is named '')."


class MatrixPreview(TypedDict):
    """A weight matrix reduced to at most rows×cols blocks: `values[i, j]` is the mean |x| of block (i, j),
    bounded by `row_edges[i]:row_edges[i+1]` and `col_edges[j]:col_edges[j+1]`."""

    name: str
    shape: list[int]
    values: np.ndarray
    row_edges: list[int]
    col_edges: list[int]
    reduce: str


class CrossLayer(TypedDict):
    """Per component kind (q, k, v, ...) and layer, a metric of the weights: `metrics[metric][component][layer]`
    (null where the layer has no such component); `names[component][layer]` is the parameter shown."""

    num_layers: int
    components: list[str]
    metrics: dict[str, dict[str, list[float | None]]]
    names: dict[str, list[str | None]]


# --- forward passes -------------------------------------------------------------------------------------


class Tokens(TypedDict):
    """`client.tokenize(text)`: ids, pieces (decoded text of each token), labels (readable), partial (token
    ends inside a character), special, offsets ([start, end] in text; null for slow tokenizers), text."""

    ids: list[int]
    pieces: list[str]
    labels: list[str]
    partial: list[bool]
    special: list[bool]
    offsets: list[list[int]] | None
    text: str


class Attention(TypedDict):
    """`client.attention(prompt, layer, bins)`: weights [heads, T, T] float32 (or [heads, K, K] when binned);
    sink_share[head]: the mean attention of query positions >= 1 on key 0 (the attention sink), exact from the
    unbinned maps (null when binned or for a one-token prompt)."""

    weights: np.ndarray
    layer: int
    num_heads: int
    num_key_value_heads: int
    kv_head_of: list[int]
    num_tokens: int
    bin_edges: list[int] | None
    tokens: list[str]
    token_ids: list[int]
    sink_share: list[float] | None


class LensLayer(TypedDict):
    layer: int
    top_ids: list[list[int]]
    top_probs: list[list[float]]
    top_tokens: list[list[str]]


class Lens(TypedDict):
    """`client.lens(prompt, top_k)`: one entry per decoder layer; the last is the model's own output."""

    num_layers: int
    top_k: int
    num_tokens: int
    layers: list[LensLayer]
    tokens: list[str]
    token_ids: list[int]


class ResidualNorms(TypedDict):
    tokens: list[str]
    token_ids: list[int]
    norms: np.ndarray


ActivationStat = TypedDict("ActivationStat", {
    "name": str, "class": str, "kind": str, "shape": list[int], "mean": float, "std": float, "max_abs": float,
    "calls": int,
})


class ActivationStats(TypedDict):
    tokens: list[str]
    modules: list[ActivationStat]


class NextTokens(TypedDict):
    """The k most likely next tokens: ids, probs (softmax of the last logits), pieces (readable labels)."""

    ids: list[int]
    probs: list[float]
    pieces: list[str]


class GeneratedToken(TypedDict):
    """One streamed item of `generate`: text is what the token adds ("" inside an incomplete character)."""

    token_id: int
    piece: str
    text: str
    eos: bool


class GenerationDone(TypedDict):
    generated: int


class Neighbours(TypedDict):
    """The k tokens whose input embeddings are closest by cosine (the token itself excluded), best first."""

    ids: list[int]
    pieces: list[str]
    cosine: list[float]


class DemoPoint(TypedDict):
    """One streamed item of `run_demo`: a live plot point."""

    series: str
    x: float
    y: float


class DemoResult(TypedDict, total=False):
    """A demo's final result: its own keys (see the demo's module) plus these three."""

    demo: str
    params: dict[str, Any]
    stopped: bool


# --- status and the frames around every request ----------------------------------------------------------


class Pong(TypedDict):
    pong: bool
    pid: int


class GpuMemory(TypedDict):
    """One CUDA device the loaded model has weights on: what this process allocated there, what is free on
    the device (other processes included: a shared box) and its size."""

    device: str
    allocated_bytes: int
    free_bytes: int
    total_bytes: int


class Status(TypedDict, total=False):
    """`client.status()`; the gpu_* keys only when the model is loaded on CUDA (summed over `gpus`, one entry
    per CUDA device of the model's device map)."""

    model: str
    pid: int
    loaded: bool
    device: str
    dtype: str
    rss_bytes: int
    uptime_s: float
    #: whether the worker has imported torch (a worker starting in the background answers weight questions first)
    torch_imported: bool
    #: whether the exact (transformers) tree is built; until then the summary and the tree wait for it
    exact_tree: bool
    #: (a worker started in the background, once it answered a weight question) whether torch was imported then
    torch_imported_at_first_answer: bool
    gpu_allocated_bytes: int
    gpu_total_bytes: int
    gpu_free_bytes: int
    gpus: list[GpuMemory]


class Progress(TypedDict):
    """Body of a `progress` frame."""

    fraction: float
    message: str


class ErrorBody(TypedDict):
    """Body of an `error` frame: `type` is an error kind of internals/errors.py (`BadRequest`, `OutOfMemory`,
    `Cancelled`, `InternalError`, ...); the client raises that class again."""

    type: str
    message: str


# --- requests (the parameters of each operation, with their defaults) ------------------------------------


@dataclass(frozen=True)
class NoParams:
    """An operation without parameters."""


@dataclass(frozen=True)
class TensorStatsRequest:
    name: str
    bins: int = 64
    clip: bool = False  # statistics between the 1st and 99th percentiles (histogram of the bulk)


@dataclass(frozen=True)
class MatrixPreviewRequest:
    name: str
    rows: int = 64
    cols: int = 128


@dataclass(frozen=True)
class ExpertStatsRequest:
    name: str  # a parameter fused at load time from several stored expert tensors (e.g. mlp.experts.gate_up_proj)
    bins: int = 64


@dataclass(frozen=True)
class ExpertSpectraRequest:
    name: str  # a stacked expert parameter: fused at load time from stored experts, or stored as one 3-D tensor


@dataclass(frozen=True)
class RouterSummaryRequest:
    name: str  # a router (gate) weight [experts, hidden]


@dataclass(frozen=True)
class SpectrumRequest:
    name: str  # a parameter, a stored tensor, "stored[e]" for slice e of a 3-D (stacked experts) tensor, or
    # "parameter[e]" for expert e of a stacked expert parameter (fused at load time or stored 3-D)


@dataclass(frozen=True)
class TokenizeRequest:
    text: str


@dataclass(frozen=True)
class PromptRequest:
    """A request on a prompt; the forward passes' requests extend it with their own options."""

    prompt: str


@dataclass(frozen=True)
class AttentionRequest(PromptRequest):
    layer: int = 0
    bins: int | None = None


@dataclass(frozen=True)
class LensRequest(PromptRequest):
    top_k: int = 5


@dataclass(frozen=True)
class NextTokensRequest(PromptRequest):
    k: int = 10


@dataclass(frozen=True)
class GenerateRequest(PromptRequest):
    max_new_tokens: int = 32
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class NeighboursRequest:
    token_id: int
    k: int = 10


@dataclass(frozen=True)
class DemoRequest:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivationsRequest(PromptRequest):
    ratio: float = 1000.0  # a value is massive when |value| >= ratio x its layer's median |value| ...
    min_value: float = 100.0  # ... and |value| >= min_value (Sun et al. 2024)


@dataclass(frozen=True)
class PatchRequest:
    clean: str
    corrupt: str  # same number of tokens as clean
    target: str | None = None  # a token string (exactly one token); default: the clean run's top token
    grids: list[str] | None = None  # some of residual, attention, mlp, heads (default: all four)
    batch_size: int | None = None  # patched runs per forward pass (default: about 4096 tokens per batch)


@dataclass(frozen=True)
class AttributeRequest(PromptRequest):
    target: str | None = None  # a token string (exactly one token); default: the model's top next token


@dataclass(frozen=True)
class LensTracksRequest(PromptRequest):
    tokens: list[str]  # token strings, each exactly one token
    position: int = -1


class Done(TypedDict):
    """An operation that only acts (e.g. `cancel`)."""

    done: bool


@dataclass(frozen=True)
class DiffTensorRequest:
    name: str  # a parameter of the explored model (its tree name)
    bins: int = 64


@dataclass(frozen=True)
class DiffSummaryRequest:
    bins: int = 64


@dataclass(frozen=True)
class DiffRankRequest:
    name: str


@dataclass(frozen=True)
class DiffBehaviourRequest(PromptRequest):
    top: int = 10


#: Every TypedDict of the contract (documented in docs/contracts.md; checked by a test).
RESULT_TYPES: tuple[type, ...] = (
    ModelSummary, TreeNode, TensorStats, Histogram, MatrixPreview, CrossLayer, Tokens, Attention, LensLayer,
    Lens, ResidualNorms, ActivationStat, ActivationStats, NextTokens, GeneratedToken, GenerationDone,
    Neighbours, DemoPoint, DemoResult, Pong, Status, Progress, ErrorBody, ChatToken, ChatRendering,
    ExpertStats, FusedStats, RouterSummary, SharedExperts, LayerRouting, Routing,
    ActivationsResult, MassiveActivation, MassiveChannel, PatchingResult, AttributionResult, TokenTracks,
    LensReadout, LensBest, Done,
    TensorDiff, RankInfo, GroupDiff, DiffAggregates, WeightDiff, TokenChange, BehaviourDiff,
    TensorSpectrum, EsdHistogram, PowerLawFit, SpectrumBrief, ModelSpectra, ExpertSpectra,
)
