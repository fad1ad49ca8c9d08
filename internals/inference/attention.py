"""Attention weights of one layer, computed on demand, in float32, by blocks of queries.

The model runs with the attention it was loaded with (sdpa: memory-efficient, no [heads, T, T] maps). For the
asked layer, a registered attention function (transformers' `AttentionInterface`, so the model's own attention
module still computes its queries and keys, RoPE included) also computes that layer's weights from its queries
and keys, a block of query rows at a time in float32: softmax(q·kᵀ·scaling, soft-capped where the model caps,
plus the model's own additive mask, sliding windows included). Only the result and one block are ever held,
and a binned request (long prompts) never holds the full maps at all: each block is reduced as it is computed.
Unless accelerate offloads weights, the forward pass stops right after that layer, so later layers never run.
A request whose maps would not fit in the memory free is refused with a clear message before any work.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.inference.errors import translate_oom
from internals.inference.model_parts import (
    attention_module,
    decoder_layers,
    prompt_tensor,
    resolve_layer,
    text_config,
)
from internals.reduce import block_edges

#: The name under which the capturing attention function (and its mask: eager's additive one) is registered.
CAPTURE_IMPLEMENTATION = "llm_internals_capture"
#: Float32 bytes of one block of scores (queries × keys × heads) computed at a time.
BLOCK_BYTES = 64 * 2**20


class _StopForward(Exception):
    """Raised once the wanted layer has run, to end the forward pass."""


@dataclass
class _Capture:
    """What the capturing attention function needs for one request."""

    target: nn.Module
    original: str  # the attention implementation the model was loaded with
    edges: list[int] | None  # bin edges over token positions, or None for full maps
    stop: bool
    result: list[np.ndarray] = field(default_factory=list)


_ACTIVE: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("llm_internals_capture", default=None)


def attention_for_layer(loaded: Any, prompt_ids: Sequence[int], layer: int, bins: int | None = None) -> dict[str, Any]:
    """The attention weights of `layer` (negative counts from the end) for a prompt.

    Returns weights (np.float32 [heads, T, T]: row q is query q's distribution over keys, rows sum to 1, zero
    above the diagonal), layer (the non-negative index), num_heads, num_key_value_heads, kv_head_of (the
    key/value head each query head reads, for grouped-query attention), num_tokens (T) and bin_edges.
    bins=K (with K < T) block-averages each map to [heads, K, K] for long prompts: entry (i, j) is the mean over
    the queries of block i of their attention mass on the keys of block j, so rows still sum to 1;
    bin_edges are the K+1 token positions that bound the blocks (null when not binned).
    """
    model = loaded.model
    index = resolve_layer(model, layer)
    ids = prompt_tensor(model, prompt_ids)
    if bins is not None and bins < 1:
        raise UserError(f"bins must be at least 1 (got {bins})")
    tokens = int(ids.shape[1])
    edges = bin_edges(tokens, bins) if bins is not None and bins < tokens else None
    heads = _num_heads(model)
    if edges is None:
        _check_maps_fit(heads, tokens)
    with translate_oom():
        array = capture_attention(model, ids, index, edges)
    heads = int(array.shape[0])
    kv_heads = num_key_value_heads(model, heads)
    group = max(1, heads // kv_heads)
    return dict(weights=np.ascontiguousarray(array, dtype=np.float32), layer=index, num_heads=heads,
                num_key_value_heads=kv_heads, kv_head_of=[h // group for h in range(heads)], num_tokens=tokens,
                bin_edges=edges)


def capture_attention(model: nn.Module, ids: torch.Tensor, index: int, edges: list[int] | None = None) -> np.ndarray:
    """Run the model on ids [1, T] and return layer `index`'s attention weights, np.float32 [heads, T, T], or
    block-averaged [heads, K, K] when `edges` (K+1 token positions) are given."""
    _register()
    block = decoder_layers(model)[index]
    capture = _Capture(target=attention_module(block), original=_implementation(model), edges=edges,
                       stop=can_stop_early(model))
    token = _ACTIVE.set(capture)
    try:
        with torch.no_grad(), _implementation_set(model, CAPTURE_IMPLEMENTATION):
            decoder = getattr(model, "base_model", model)  # no LM head: its [T, vocab] logits are not needed
            decoder(input_ids=ids, use_cache=False)
    except _StopForward:
        pass
    finally:
        _ACTIVE.reset(token)
    if len(capture.result) != 1:
        raise RuntimeError(f"expected one attention map from layer {index}, captured {len(capture.result)}")
    return capture.result[0]


def _capturing_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """The attention function registered under CAPTURE_IMPLEMENTATION: the model's own attention for every
    layer, and for the target layer its weights, computed on the side from the same queries and keys."""
    capture = _ACTIVE.get()
    original = _original_function(module, capture.original if capture else "eager")
    if capture is not None and module is capture.target:
        capture.result.append(_weights_by_blocks(query, key, attention_mask, kwargs.get("scaling"),
                                                 kwargs.get("softcap"), capture.edges))
        if capture.stop:
            raise _StopForward
    return original(module, query, key, value, attention_mask, *args, **kwargs)


def _weights_by_blocks(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
                       scaling: float | None, softcap: float | None, edges: list[int] | None) -> np.ndarray:
    """softmax(q·kᵀ·scaling [soft-capped] + mask) in float32, one block of query rows at a time (batch row 0).

    The same steps as transformers' eager attention, so the weights equal its `output_attentions`; float32
    throughout, so a bf16 model's weights are not rounded before the softmax.
    """
    q = query[0].float()  # [heads, T, d]
    heads, tokens = int(q.shape[0]), int(q.shape[1])
    keys = key[0].float()
    groups = max(1, heads // int(keys.shape[0]))
    if groups > 1:
        keys = keys.repeat_interleave(groups, dim=0)  # query head h reads key head h // groups
    keys_t = keys.transpose(1, 2)  # [heads, d, S]
    length = int(keys.shape[1])
    if scaling is None:
        scaling = q.shape[-1] ** -0.5  # what every eager attention does without an explicit scaling
    rows = max(1, min(tokens, BLOCK_BYTES // max(1, 4 * heads * length)))
    if edges is None:
        out = np.empty((heads, tokens, length), dtype=np.float32)
    else:
        bins = len(edges) - 1
        sizes = torch.tensor(np.diff(edges), device=q.device)
        bin_of = torch.repeat_interleave(torch.arange(bins, device=q.device), sizes)
        sums = torch.zeros(heads, bins, bins, dtype=torch.float32, device=q.device)
    for start in range(0, tokens, rows):
        stop = min(tokens, start + rows)
        scores = torch.matmul(q[:, start:stop], keys_t) * scaling
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        if mask is not None:
            scores = scores + mask[0, :, start:stop, :length].float()
        weights = torch.softmax(scores, dim=-1)
        del scores
        if edges is None:
            out[:, start:stop] = weights.cpu().numpy()
        else:
            per_key_bin = torch.zeros(heads, stop - start, bins, dtype=torch.float32, device=q.device)
            per_key_bin.index_add_(2, bin_of[:length], weights)
            sums.index_add_(1, bin_of[start:stop], per_key_bin)
    if edges is None:
        return out
    return (sums / sizes.to(torch.float32)[None, :, None]).cpu().numpy()


def _original_function(module: nn.Module, name: str) -> Callable[..., Any]:
    """The attention function the model would have used: the registered kernel, or its own module's eager one."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if name == "eager" or name not in ALL_ATTENTION_FUNCTIONS:
        if eager is None:
            raise UserError(f"{type(module).__name__} has no eager attention function to capture weights from")
        return eager
    return ALL_ATTENTION_FUNCTIONS[name]


_registered = False


def _register() -> None:
    """Register the capturing attention function, with eager's additive mask (explicit, sliding windows
    included), once per process."""
    global _registered
    if _registered:
        return
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(CAPTURE_IMPLEMENTATION, _capturing_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(CAPTURE_IMPLEMENTATION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    _registered = True


def _implementation(model: nn.Module) -> str:
    return str(getattr(model.config, "_attn_implementation", None) or "eager")


@contextmanager
def _implementation_set(model: nn.Module, name: str) -> Iterator[None]:
    """Use attention implementation `name` for the duration (restored afterwards, even on errors)."""
    current = _implementation(model)
    if current == name:
        yield
        return
    model.set_attn_implementation(name)  # type: ignore[operator]  # torch types dynamic attributes as Tensor | Module
    try:
        yield
    finally:
        model.set_attn_implementation(current)  # type: ignore[operator]  # torch types dynamic attributes as Tensor | Module


def can_stop_early(model: nn.Module) -> bool:
    """Whether the forward pass may be aborted mid-way. Not with offloaded weights: accelerate moves a block's
    weights back to CPU/disk after the block's forward, and aborting inside a block would skip that."""
    placed = {str(device) for device in (getattr(model, "hf_device_map", None) or {}).values()}
    offloaded = "disk" in placed or ("cpu" in placed and len(placed) > 1)
    return not offloaded


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch to eager attention for the duration (for `output_attentions=True`, e.g. in reference checks)."""
    with _implementation_set(model, "eager"):
        yield


def _num_heads(model: nn.Module) -> int:
    config = text_config(model)
    for name in ("num_attention_heads", "n_head"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1


def _check_maps_fit(heads: int, tokens: int) -> None:
    """Refuse full maps that would not fit in the memory free now (they are returned as float32 on the CPU)."""
    import psutil

    need = 4 * heads * tokens * tokens
    free = psutil.virtual_memory().available
    if need > free // 2:
        raise UserError(f"the attention maps of one layer for {tokens} tokens need {need / 2**30:.1f} GiB and "
                        f"{free / 2**30:.1f} GiB are free: ask for binned maps (bins=K) or a shorter prompt")


def num_key_value_heads(model: nn.Module, heads: int) -> int:
    value = getattr(text_config(model), "num_key_value_heads", None)
    return int(value) if isinstance(value, int) and value > 0 and heads % value == 0 else heads


def bin_edges(tokens: int, bins: int) -> list[int]:
    """K+1 increasing token positions from 0 to T splitting the prompt into K nearly equal blocks."""
    return block_edges(tokens, bins)
