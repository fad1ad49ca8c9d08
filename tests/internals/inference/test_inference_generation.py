"""Next-token predictions and streamed generation (greedy equals transformers' generate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.inference import generation
from internals.inference.generation import generate_stream, next_token_topk


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2"])
def test_greedy_stream_equals_generate(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    ids = prompt_ids(loaded, 7)
    streamed = [step["token_id"] for step in generate_stream(loaded, ids, 12)]
    with torch.no_grad():
        out = loaded.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12, min_new_tokens=12,
                                    pad_token_id=0)
    assert streamed == out[0, len(ids):].tolist()


def test_stream_texts_join_to_the_decoded_output(tiny_models):
    loaded = load_tiny(tiny_models, "qwen2")
    steps = list(generate_stream(loaded, prompt_ids(loaded, 5), 10, temperature=1.5, seed=3))
    tokens = [s["token_id"] for s in steps]
    assert "".join(s["text"] for s in steps) == loaded.tokenizer.decode(tokens, clean_up_tokenization_spaces=False)
    assert all(isinstance(s["piece"], str) and s["eos"] is False for s in steps)


def test_sampling_is_seeded(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 5)
    run = lambda seed: [s["token_id"] for s in generate_stream(loaded, ids, 8, temperature=2.0, seed=seed)]  # noqa: E731
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_stops_at_eos_and_when_asked(tiny_models, monkeypatch):
    loaded = load_tiny(tiny_models, "llama")
    ids = prompt_ids(loaded, 5)
    greedy = [s["token_id"] for s in generate_stream(loaded, ids, 6)]
    monkeypatch.setattr(generation, "eos_ids", lambda loaded: {greedy[2]})
    steps = list(generate_stream(loaded, ids, 6))
    assert [s["token_id"] for s in steps] == greedy[:3] and steps[-1]["eos"]
    calls = []
    stop_after_two = lambda: (calls.append(1), len(calls) > 2)[1]  # noqa: E731
    assert len(list(generate_stream(loaded, ids, 6, should_stop=stop_after_two))) == 2


def test_next_token_topk_is_the_last_softmax(tiny_models):
    loaded = load_tiny(tiny_models, "gpt2")
    ids = prompt_ids(loaded, 6)
    got = next_token_topk(loaded, ids, 5)
    with torch.no_grad():
        probs = torch.softmax(loaded.model(torch.tensor([ids])).logits[0, -1], dim=-1)
    top = torch.topk(probs, 5)
    assert got["ids"] == top.indices.tolist() and len(got["pieces"]) == 5
    np.testing.assert_allclose(got["probs"], top.values.numpy(), atol=1e-6)
