"""Attention maps of one layer: equal to transformers' own eager attention, and only one layer's maps held."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.attention import attention_for_layer, bin_edges, capture_attention, eager_attention
from internals.inference.model_parts import attention_module, decoder_layers


def _reference(loaded, ids):
    """transformers' own eager attention weights, every layer (the model itself runs sdpa where it can)."""
    with torch.no_grad(), eager_attention(loaded.model):
        out = loaded.model(torch.tensor([ids]), output_attentions=True, use_cache=False)
    return [a[0].float().numpy() for a in out.attentions]


def test_models_load_with_memory_efficient_attention(tiny_models):
    assert load_tiny(tiny_models, "llama").model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2", "demo", "gemma2", "mistral-sliding"])
def test_every_layer_equals_transformers_eager_attention(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)  # "demo": the shipped demo model (GQA, 6 query / 2 KV heads)
    ids = prompt_ids(loaded, 17)
    reference = _reference(loaded, ids)
    for layer, expected in enumerate(reference):
        got = attention_for_layer(loaded, ids, layer)
        assert got["layer"] == layer and got["weights"].dtype == np.float32
        assert got["weights"].shape == expected.shape == (got["num_heads"], 17, 17)
        np.testing.assert_allclose(got["weights"], expected, atol=1e-4)


def test_rows_are_distributions_and_causal(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    w = attention_for_layer(loaded, prompt_ids(loaded, 20), 1)["weights"]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    above_diagonal = np.triu(np.ones((20, 20), dtype=bool), k=1)
    assert np.all(w[:, above_diagonal] == 0) and np.all(w >= 0)


def test_grouped_query_heads_are_reported(tiny_models):
    got = attention_for_layer(load_tiny(tiny_models, "qwen2"), [1, 2, 3], 0)
    assert (got["num_heads"], got["num_key_value_heads"]) == (6, 2)
    assert got["kv_head_of"] == [0, 0, 0, 1, 1, 1]
    assert attention_for_layer(load_tiny(tiny_models, "gpt2"), [1, 2, 3], 0)["kv_head_of"] == [0, 1, 2, 3]


def test_negative_layer_counts_from_the_end(tiny_models):
    loaded = load_tiny(tiny_models, "qwen2")
    ids = prompt_ids(loaded, 6)
    last = attention_for_layer(loaded, ids, -1)
    assert last["layer"] == 2
    np.testing.assert_array_equal(last["weights"], attention_for_layer(loaded, ids, 2)["weights"])


def test_binned_maps_keep_rows_summing_to_one(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 50)
    full = attention_for_layer(loaded, ids, 0)["weights"]
    got = attention_for_layer(loaded, ids, 0, bins=7)
    assert got["weights"].shape == (4, 7, 7) and got["num_tokens"] == 50
    assert got["bin_edges"] == bin_edges(50, 7) and got["bin_edges"][0] == 0 and got["bin_edges"][-1] == 50
    np.testing.assert_allclose(got["weights"].sum(-1), 1.0, atol=1e-5)
    e = got["bin_edges"]  # block (i, j): mean over block i's queries of their mass on block j's keys
    expected = full[:, e[2]:e[3], e[1]:e[2]].sum(-1).mean(-1)
    np.testing.assert_allclose(got["weights"][:, 2, 1], expected, atol=1e-6)
    assert attention_for_layer(loaded, ids[:5], 0, bins=7)["bin_edges"] is None  # fewer tokens than bins


def test_bad_requests_are_user_errors(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    with pytest.raises(UserError, match="layer 2 is out of range"):
        attention_for_layer(loaded, [1, 2], 2)
    with pytest.raises(UserError, match="out of range"):
        attention_for_layer(loaded, [1, 2], -3)
    with pytest.raises(UserError, match="the prompt is empty"):
        attention_for_layer(loaded, [], 0)
    with pytest.raises(UserError, match="at most 128 positions"):
        attention_for_layer(loaded, [1] * 129, 0)
    with pytest.raises(UserError, match="outside the model's vocabulary"):
        attention_for_layer(loaded, [1, 256], 0)


def test_only_the_asked_layer_is_held_and_later_layers_do_not_run(tiny_models):
    """The memory claim, structurally: one map captured, layers after the target never computed, hooks removed."""
    loaded = load_tiny(tiny_models, "qwen2")
    layers = decoder_layers(loaded.model)
    hooks_before = [len(attention_module(block)._forward_hooks) for block in layers]
    ran: list[int] = []
    spies = [attention_module(block).register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
             for i, block in enumerate(layers)]
    try:
        weights = capture_attention(loaded.model, torch.tensor([prompt_ids(loaded, 9)]), 1)
        assert loaded.model.config._attn_implementation == "sdpa"  # restored after the capture
    finally:
        for spy in spies:
            spy.remove()
    assert weights.shape == (6, 9, 9)
    assert ran == [0, 1]  # layer 2 never started: its map was never even computed
    assert [len(attention_module(block)._forward_hooks) for block in layers] == hooks_before


def test_bfloat16_model_gives_float32_maps(tiny_models):
    loaded = load_tiny(tiny_models, "llama", "bfloat16")
    got = attention_for_layer(loaded, prompt_ids(loaded, 10), 0)
    assert got["weights"].dtype == np.float32
    np.testing.assert_allclose(got["weights"].sum(-1), 1.0, atol=2e-2)


def test_bfloat16_scores_are_not_rounded_before_the_softmax(tiny_models):
    """The maps of a bf16 model are computed from its queries and keys in float32: closer to the float32
    model's maps than transformers' own bf16 eager weights are."""
    ids = prompt_ids(load_tiny(tiny_models, "llama"), 24)
    exact = _reference(load_tiny(tiny_models, "llama"), ids)[1]
    half = load_tiny(tiny_models, "llama", "bfloat16")
    ours = attention_for_layer(half, ids, 1)["weights"]
    theirs = _reference(half, ids)[1]
    assert np.abs(ours - exact).max() <= np.abs(theirs - exact).max()


def test_maps_that_would_not_fit_are_refused_before_any_work(tiny_models, monkeypatch):
    import psutil

    loaded = load_tiny(tiny_models, "llama")
    real = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=1000))
    with pytest.raises(UserError, match="need .* GiB .* free: ask for binned maps"):
        attention_for_layer(loaded, prompt_ids(loaded, 40), 0)
    binned = attention_for_layer(loaded, prompt_ids(loaded, 40), 0, bins=8)  # binned maps never hold full ones
    assert binned["weights"].shape == (4, 8, 8)


def test_blocks_smaller_than_the_prompt_give_the_same_maps(tiny_models, monkeypatch):
    import internals.inference.attention as attention

    loaded = load_tiny(tiny_models, "qwen2")
    ids = prompt_ids(loaded, 33)
    whole = attention_for_layer(loaded, ids, 2)
    whole_binned = attention_for_layer(loaded, ids, 2, bins=5)
    monkeypatch.setattr(attention, "BLOCK_BYTES", 4 * 6 * 33 * 4)  # four query rows a block
    np.testing.assert_allclose(attention_for_layer(loaded, ids, 2)["weights"], whole["weights"], atol=1e-6)
    np.testing.assert_allclose(attention_for_layer(loaded, ids, 2, bins=5)["weights"], whole_binned["weights"], atol=1e-6)
