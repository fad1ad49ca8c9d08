"""Residual norms, massive activations and attention sinks against the existing readers and a planted value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.activations import TOP, residual_activations
from internals.inference.attention import attention_for_layer
from internals.inference.lens import residual_norms
from internals.inference.loading import load_for_inference
from internals.sources import resolve_source


@pytest.mark.parametrize("kind", ["llama", "gpt2", "mixtral", "gemma2"])
def test_norms_match_the_residual_reader_and_sinks_the_attention_maps(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    ids = prompt_ids(loaded, 10)
    result = residual_activations(loaded, ids)
    layers = loaded.model.config.num_hidden_layers
    assert result["layers"] == ["embed", *range(layers)]
    assert result["token_ids"] == ids and len(result["tokens"]) == len(ids)
    np.testing.assert_allclose(result["residual_norm"], residual_norms(loaded, ids), rtol=1e-5)
    assert len(result["massive"]) == TOP
    magnitudes = [abs(m["value"]) for m in result["massive"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert result["sink_share"].shape == (layers, loaded.model.config.num_attention_heads)
    for layer in (0, layers - 1):
        weights = attention_for_layer(loaded, ids, layer)["weights"]
        np.testing.assert_allclose(result["sink_share"][layer], weights[:, 1:, 0].mean(axis=1), atol=1e-6)


def test_demo_model_sinks_on_repeated_random_tokens(tiny_models):
    loaded = load_tiny(tiny_models, "demo")
    rng = np.random.default_rng(1)
    block = rng.integers(100, 4096, 16).tolist()
    ids = block * 3
    result = residual_activations(loaded, ids)
    sinks = result["sink_share"]
    assert np.all((sinks >= 0) & (sinks <= 1))
    for layer in range(loaded.model.config.num_hidden_layers):
        weights = attention_for_layer(loaded, ids, layer)["weights"]
        np.testing.assert_allclose(sinks[layer], weights[:, 1:, 0].mean(axis=1), atol=1e-6)
    top = result["massive"][0]
    assert top["token"] == result["tokens"][top["position"]]


def test_a_planted_massive_channel_is_found_and_flagged(tiny_models):
    """Plant a huge value in one embedding channel of one token: the residual stream carries it through every
    layer at that token's positions, so the rule must flag that channel there and nowhere else."""
    loaded = load_for_inference(resolve_source(str(tiny_models("llama"))), device="cpu")  # own copy: modified
    planted_token, channel = 17, 5
    with torch.no_grad():
        loaded.model.get_input_embeddings().weight[planted_token, channel] = 3000.0
    ids = [3, planted_token, 9, 40, planted_token, 8]
    result = residual_activations(loaded, ids)
    top = result["massive"][0]
    assert (top["channel"], top["is_massive"]) == (channel, True) and top["position"] in (1, 4)
    assert top["ratio_to_median"] > 1000
    found = {c["channel"]: c for c in result["massive_channels"]}
    assert list(found) == [channel]
    assert found[channel]["positions"] == [1, 4]
    assert found[channel]["layers"] == ["embed", 0, 1]
    assert found[channel]["max_abs"] == pytest.approx(abs(top["value"]))
    # the paper's thresholds on the unmodified model flag nothing
    assert residual_activations(load_tiny(tiny_models, "llama"), ids)["massive_channels"] == []


def test_one_token_prompt_and_bad_rule(tiny_models):
    loaded = load_tiny(tiny_models, "qwen2")
    result = residual_activations(loaded, [5])
    assert result["residual_norm"].shape == (4, 1)
    assert all(math.isnan(v) for v in result["sink_share"].ravel())
    with pytest.raises(UserError, match="ratio"):
        residual_activations(loaded, [5, 6], ratio=0)
