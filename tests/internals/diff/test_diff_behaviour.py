"""Behaviour on a prompt, checked against a direct computation with transformers."""

from __future__ import annotations

import shutil

import pytest
import torch
from diff_support import plant

from internals.diff.behaviour import diff_behaviour
from internals.sources import resolve_source

PROMPT = "def __init__(self, value):"


def direct(base, tuned, prompt):
    """KL(tuned ‖ base) per position and residual cosines straight from transformers' outputs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(base))(prompt, return_tensors="pt").input_ids
    outs = []
    for folder in (base, tuned):
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        with torch.no_grad():
            outs.append(model(input_ids=ids, output_hidden_states=True))
    lb, lt = (o.logits[0].double().log_softmax(-1) for o in outs)
    kl = torch.nn.functional.kl_div(lb, lt, log_target=True, reduction="none").sum(-1)
    cos = [torch.nn.functional.cosine_similarity(a[0].double(), b[0].double(), dim=-1)
           for a, b in zip(outs[0].hidden_states, outs[1].hidden_states)]
    return kl, torch.stack(cos), (lt[-1] - lb[-1])


def test_identical_models_do_not_differ(tiny_models, tmp_path):
    base = tiny_models("llama")
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    b = diff_behaviour(resolve_source(str(base)), resolve_source(str(copy)), PROMPT, device="cpu")
    assert len(b["kl"]) == len(b["tokens"]) > 3
    assert max(b["kl"]) < 1e-9
    assert all(abs(c - 1) < 1e-6 for row in b["residual_cosine"] for c in row)
    assert all(abs(t["delta_logprob"]) < 1e-5 for t in b["rose"] + b["fell"])


@pytest.mark.parametrize("kind", ["qwen2", "gpt2"])
def test_changed_model_matches_transformers(kind, tiny_models, tmp_path):
    base = tiny_models(kind)
    tuned = tmp_path / "tuned"
    name = {"qwen2": "model.layers.1.mlp.up_proj.weight", "gpt2": "transformer.h.0.mlp.c_fc.weight"}[kind]
    plant(base, tuned, {name: (4, 3.0)})
    b = diff_behaviour(resolve_source(str(base)), resolve_source(str(tuned)), PROMPT, device="cpu", top=5)
    kl, cos, delta = direct(base, tuned, PROMPT)
    assert min(b["kl"]) >= 0 and max(b["kl"]) > 1e-6
    assert torch.allclose(torch.tensor(b["kl"], dtype=torch.float64), kl, rtol=1e-4, atol=1e-7)
    assert torch.allclose(torch.tensor(b["residual_cosine"], dtype=torch.float64), cos, atol=1e-5)
    first_changed = 2 if kind == "qwen2" else 1  # hidden state after the changed layer
    assert cos[:first_changed].min() > 1 - 1e-6 and cos[first_changed:].min() < 1 - 1e-6
    top = torch.topk(delta, 5)
    assert [t["token_id"] for t in b["rose"]] == top.indices.tolist()
    assert [t["delta_logprob"] for t in b["rose"]] == pytest.approx(top.values.tolist(), abs=1e-4)
    assert [t["token_id"] for t in b["fell"]] == torch.topk(-delta, 5).indices.tolist()
    assert all(isinstance(t["token"], str) and t["token"] for t in b["rose"])


def test_adapter_behaviour_equals_merged_model(tiny_models, tmp_path):
    from test_diff_adapter import make_adapter

    base = tiny_models("llama")
    adapter, merged, _ = make_adapter(base, tmp_path, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    got = diff_behaviour(resolve_source(str(base)), adapter, PROMPT, device="cpu")
    ref = diff_behaviour(resolve_source(str(base)), resolve_source(str(merged)), PROMPT, device="cpu")
    assert max(got["kl"]) > 1e-6
    assert got["kl"] == pytest.approx(ref["kl"], rel=1e-3, abs=1e-7)
    assert torch.allclose(torch.tensor(got["residual_cosine"]), torch.tensor(ref["residual_cosine"]), atol=1e-5)
