"""Attention weights of one layer, computed on demand.

`model(..., output_attentions=True)` keeps every layer's [heads, T, T] map until the forward pass ends: for
a 28-layer model and a 4k-token prompt that is 28 times more memory than the one map the view shows. Here a
forward hook on the chosen layer's attention module keeps that layer's map only, and (unless accelerate
offloads weights) stops the forward pass right after it, so later layers are not even computed. Eager
attention computes each layer's map anyway; it is freed as soon as the layer returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.inference.errors import translate_oom
from internals.reduce import block_edges, block_means
from internals.inference.model_parts import (
    attention_module,
    decoder_layers,
    prompt_tensor,
    resolve_layer,
    text_config,
)


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass once the wanted layer has run."""


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
    with translate_oom():
        weights = capture_attention(model, ids, index)
        tokens = int(weights.shape[-1])
        edges = None
        if bins is not None and bins < tokens:
            edges = bin_edges(tokens, bins)
            array = block_average(weights, edges)
        else:
            array = weights.float().cpu().numpy()
    del weights
    heads = int(array.shape[0])
    kv_heads = num_key_value_heads(model, heads)
    group = max(1, heads // kv_heads)
    return dict(weights=np.ascontiguousarray(array, dtype=np.float32), layer=index, num_heads=heads,
                num_key_value_heads=kv_heads, kv_head_of=[h // group for h in range(heads)], num_tokens=tokens,
                bin_edges=edges)


def capture_attention(model: nn.Module, ids: torch.Tensor, index: int) -> torch.Tensor:
    """Run the model on ids [1, T] and return layer `index`'s attention weights [heads, T, T] (model dtype).

    Only that layer's map is ever held: the hook keeps one tensor, and other layers' maps die with their
    layer's forward call.
    """
    block = decoder_layers(model)[index]
    captured: list[torch.Tensor] = []
    stop = can_stop_early(model)

    def keep_weights(module: nn.Module, args: tuple, output: Any) -> None:
        weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
        if not isinstance(weights, torch.Tensor):
            raise UserError(f"{type(module).__name__} returned no attention weights: load the model with eager attention")
        captured.append(weights[0].detach())
        if stop:
            raise _StopForward

    handle = attention_module(block).register_forward_hook(keep_weights)
    try:
        with torch.no_grad(), eager_attention(model):
            decoder = getattr(model, "base_model", model)  # no LM head: its [T, vocab] logits are not needed
            decoder(input_ids=ids, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"expected one attention map from layer {index}, captured {len(captured)}")
    return captured[0]


def can_stop_early(model: nn.Module) -> bool:
    """Whether the forward pass may be aborted mid-way. Not with offloaded weights: accelerate moves a block's
    weights back to CPU/disk after the block's forward, and aborting inside a block would skip that."""
    placed = {str(device) for device in (getattr(model, "hf_device_map", None) or {}).values()}
    offloaded = "disk" in placed or ("cpu" in placed and len(placed) > 1)
    return not offloaded


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch to eager attention for the duration (the fused kernels do not return weights)."""
    config = model.config
    current = getattr(config, "_attn_implementation", "eager")
    if current == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(current)


def num_key_value_heads(model: nn.Module, heads: int) -> int:
    value = getattr(text_config(model), "num_key_value_heads", None)
    return int(value) if isinstance(value, int) and value > 0 and heads % value == 0 else heads


def bin_edges(tokens: int, bins: int) -> list[int]:
    """K+1 increasing token positions from 0 to T splitting the prompt into K nearly equal blocks."""
    return block_edges(tokens, bins)


def block_average(weights: torch.Tensor, edges: list[int]) -> np.ndarray:
    """Block-average [heads, T, T] maps to [heads, K, K]: sum over each key block, mean over each query block
    (internals/reduce.py). One query block of one head at a time in float32, so the extra memory is one
    [block, T] band, not a float32 copy of the maps."""
    out = np.empty((int(weights.shape[0]), len(edges) - 1, len(edges) - 1), dtype=np.float32)
    for h in range(int(weights.shape[0])):
        out[h] = block_means(lambda a, b, h=h: weights[h, a:b].float().cpu().numpy(), edges, edges, sum_cols=True)
    return out
