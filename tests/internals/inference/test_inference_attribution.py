"""Direct logit attribution: the parts add up to the logit, heads add up to their block, and hand computations."""

from __future__ import annotations

import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.attribution import direct_logit_attribution, head_outputs
from internals.inference.model_parts import attention_module, decoder_layers, out_projection

KINDS = ["llama", "llama-tied", "qwen2", "gpt2", "mixtral", "gemma2", "demo"]


@pytest.mark.parametrize("kind", KINDS)
def test_contributions_sum_to_the_logit(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    ids = prompt_ids(loaded, 11)
    result = direct_logit_attribution(loaded, ids)
    with torch.no_grad():
        logits = loaded.model(torch.tensor([ids]), use_cache=False).logits[0, -1]
    if not getattr(loaded.model.config, "final_logit_softcapping", None):
        assert result["target_id"] == int(logits.argmax())
        assert result["logit"] == pytest.approx(float(logits[result["target_id"]]), abs=1e-5)
    total = result["bias"] + result["embedding"] + sum(result["attention"]) + sum(result["mlp"])
    assert total == pytest.approx(result["logit"], abs=1e-4)
    layers = loaded.model.config.num_hidden_layers
    assert len(result["attention"]) == len(result["mlp"]) == len(result["heads"]) == layers
    assert all(len(row) == loaded.model.config.num_attention_heads for row in result["heads"])
    assert len(result["tokens"]) == len(ids)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "gemma2"])
def test_heads_sum_to_their_attention_block(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    model = loaded.model
    ids = prompt_ids(loaded, 9)
    result = direct_logit_attribution(loaded, ids, target_id=5)
    assert result["target_id"] == 5
    for layer, (heads, block) in enumerate(zip(result["heads"], result["attention"])):
        projection = out_projection(attention_module(decoder_layers(model)[layer]))
        if getattr(projection, "bias", None) is None:  # else the projection's bias belongs to the block only
            assert sum(heads) == pytest.approx(block, abs=1e-5)
    # and the head outputs through o_proj add up to the attention module's real output
    kept = {}
    attention = attention_module(decoder_layers(model)[1])
    handles = [attention.register_forward_hook(lambda m, a, o: kept.__setitem__("out", o[0][0, -1].clone())),
               out_projection(attention).register_forward_pre_hook(lambda m, a: kept.__setitem__("z", a[0][0, -1].clone()))]
    with torch.no_grad():
        model(torch.tensor([ids]), use_cache=False)
    for h in handles:
        h.remove()
    projection = out_projection(attention)
    bias = projection.bias.double() if getattr(projection, "bias", None) is not None else 0.0
    summed = head_outputs(model, 1, kept["z"]).sum(0) + bias
    torch.testing.assert_close(summed, kept["out"].double(), atol=1e-5, rtol=0)


def test_embedding_term_by_hand_for_rmsnorm(tiny_models):
    """Llama: the embedding's term is (x_embed / rms(x_final)) * norm.weight . W_U[target], computed here from
    the config's eps, independently of the norm probe."""
    loaded = load_tiny(tiny_models, "llama")
    model = loaded.model
    ids = prompt_ids(loaded, 7)
    result = direct_logit_attribution(loaded, ids, target_id=42)
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        embed = out.hidden_states[0][0, -1].double()
        kept = {}
        handle = model.model.layers[-1].register_forward_hook(lambda m, a, o: kept.__setitem__("x", o[0, -1].clone()))
        model(torch.tensor([ids]), use_cache=False)
        handle.remove()
        final = kept["x"].double()
        rms = torch.sqrt(final.pow(2).mean() + model.config.rms_norm_eps)
        expected = float((embed / rms * model.model.norm.weight.double()) @ model.lm_head.weight[42].double())
    assert result["embedding"] == pytest.approx(expected, abs=1e-5)
    assert result["bias"] == pytest.approx(0.0, abs=1e-9)


def test_bad_target_is_an_error(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    with pytest.raises(UserError, match="outside the vocabulary"):
        direct_logit_attribution(loaded, prompt_ids(loaded, 4), target_id=-1)
