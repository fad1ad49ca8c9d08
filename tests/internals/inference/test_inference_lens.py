"""Logit lens, residual norms and activation statistics against manual computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.lens import activation_stats, logit_lens, residual_norms


def _forward(loaded, ids):
    with torch.no_grad():
        return loaded.model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_last_layer_is_the_models_own_distribution(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    ids = prompt_ids(loaded, 10)
    lens = logit_lens(loaded, ids, top_k=4)
    assert lens["num_layers"] == len(lens["layers"]) == loaded.model.config.num_hidden_layers
    probs = torch.softmax(_forward(loaded, ids).logits[0].float(), dim=-1)
    top = torch.topk(probs, 4, dim=-1)
    last = lens["layers"][-1]
    assert last["layer"] == lens["num_layers"] - 1
    assert last["top_ids"] == top.indices.tolist()
    np.testing.assert_allclose(last["top_probs"], top.values.numpy(), atol=1e-5)
    assert len(last["top_labels"]) == 10 and all(len(row) == 4 for row in last["top_labels"])


def test_intermediate_layer_is_final_norm_then_lm_head(tiny_models):
    loaded = load_tiny(tiny_models, "qwen2")
    ids = prompt_ids(loaded, 8)
    lens = logit_lens(loaded, ids, top_k=3)
    hidden = _forward(loaded, ids).hidden_states  # [0] embeddings, [i] after layer i-1 (pre-norm but the last)
    with torch.no_grad():
        for layer in range(lens["num_layers"] - 1):
            logits = loaded.model.lm_head(loaded.model.model.norm(hidden[layer + 1][0]))
            top = torch.topk(torch.softmax(logits, dim=-1), 3, dim=-1)
            assert lens["layers"][layer]["top_ids"] == top.indices.tolist()
            np.testing.assert_allclose(lens["layers"][layer]["top_probs"], top.values.numpy(), atol=1e-5)


def test_residual_norms_are_pre_norm_residuals(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 9)
    norms = residual_norms(loaded, ids)
    assert norms.shape == (3, 9) and norms.dtype == np.float32
    hidden = _forward(loaded, ids).hidden_states
    for row in range(2):  # hidden_states[-1] is after the final norm in transformers: compare the others
        np.testing.assert_allclose(norms[row], hidden[row][0].norm(dim=-1).numpy(), rtol=1e-5)
    assert not np.allclose(norms[2], hidden[2][0].norm(dim=-1).numpy())  # the real residual, not the normed one


def test_activation_stats_cover_linear_norm_attention_mlp(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 6)
    stats = {item["name"]: item for item in activation_stats(loaded, ids)}
    assert stats["model.layers.0.self_attn.q_proj"]["kind"] == "linear"
    assert stats["model.layers.1.self_attn"]["kind"] == "attention"
    assert stats["model.layers.0.mlp"]["kind"] == "mlp"
    assert stats["model.norm"]["kind"] == "norm" and stats["lm_head"]["shape"] == [1, 6, 256]
    captured = {}
    handle = loaded.model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, a, o: captured.setdefault("x", o))
    try:
        _forward(loaded, ids)
    finally:
        handle.remove()
    x = captured["x"].double()
    item = stats["model.layers.0.mlp.down_proj"]
    assert item["calls"] == 1
    assert item["mean"] == pytest.approx(x.mean().item(), abs=1e-6)
    assert item["std"] == pytest.approx(x.std(correction=0).item(), rel=1e-4)
    assert item["max_abs"] == pytest.approx(x.abs().max().item(), rel=1e-6)


def test_lens_rejects_bad_top_k(tiny_models):
    with pytest.raises(UserError, match="top-k"):
        logit_lens(load_tiny(tiny_models, "llama"), [1, 2], top_k=0)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma2"])
def test_token_tracks_against_hand_readouts(tiny_models, kind):
    """Ranks and probabilities of chosen tokens after each attention block and each layer, recomputed here from
    output_hidden_states (the layers' inputs) plus the attention modules' outputs, through the real final norm
    and LM head."""
    from internals.inference.lens import lens_logits, lens_token_tracks
    from internals.inference.model_parts import attention_writer, decoder_layers

    loaded = load_tiny(tiny_models, kind)
    model = loaded.model
    ids = prompt_ids(loaded, 9)
    final = _forward(loaded, ids).logits[0, -1].float()
    chosen = [int(final.argmax()), 7, 100]
    tracks = lens_token_tracks(loaded, ids, chosen, position=-1)
    layers = model.config.num_hidden_layers
    assert tracks["position"] == 8 and tracks["token_ids"] == chosen
    assert tracks["readouts"] == [{"layer": i, "stage": s} for i in range(layers) for s in ("attention", "layer")]
    added, outputs = [], []
    handles = [
        attention_writer(b).register_forward_hook(lambda m, a, o: added.append(o[0][0, -1] if isinstance(o, tuple) else o[0, -1]))
        for b in decoder_layers(model)
    ]
    handles += [b.register_forward_hook(lambda m, a, o: outputs.append((o[0] if isinstance(o, tuple) else o)[0, -1]))
                for b in decoder_layers(model)]
    hidden = _forward(loaded, ids).hidden_states
    for h in handles:
        h.remove()
    with torch.no_grad():
        states = []
        for layer in range(layers):
            states += [hidden[layer][0, -1] + added[layer], outputs[layer]]
        logits = lens_logits(model, torch.stack(states))
    probs = torch.softmax(logits, dim=-1)
    np.testing.assert_allclose(tracks["probs"], probs[:, chosen].numpy(), atol=1e-6)
    for row in range(len(states)):
        order = torch.argsort(logits[row], descending=True).tolist()
        assert [order.index(t) + 1 for t in chosen] == tracks["ranks"][row].tolist()
    assert tracks["ranks"][-1][0] == 1  # the model's own top token at the last readout
    np.testing.assert_allclose(tracks["probs"][-1][0], torch.softmax(final, -1)[chosen[0]].item(), atol=1e-5)
    for column, best in enumerate(tracks["best"]):
        row = int(np.argmax(tracks["probs"][:, column]))
        assert (best["layer"], best["stage"]) == (row // 2, ("attention", "layer")[row % 2])


def test_token_tracks_bad_input(tiny_models):
    from internals.inference.lens import lens_token_tracks

    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 4)
    with pytest.raises(UserError, match="position"):
        lens_token_tracks(loaded, ids, [1], position=4)
    with pytest.raises(UserError, match="at least one"):
        lens_token_tracks(loaded, ids, [])
    with pytest.raises(UserError, match="vocabulary"):
        lens_token_tracks(loaded, ids, [10**6])
