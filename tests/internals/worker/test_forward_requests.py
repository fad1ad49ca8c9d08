"""Forward-pass requests end to end: through a real worker process, and the CLI's JSON contracts."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from internals.worker.client import Cancelled, RemoteError
from tests_helpers import run_cli, running_worker


@pytest.fixture(scope="module")
def worker(tiny_models):
    with running_worker(str(tiny_models("qwen2"))) as w:
        yield w
    assert w.proc.poll() is not None


def test_attention_through_the_socket_matches_transformers(worker, tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "def __init__(self, value):"
    result = worker.attention(prompt, layer=1)
    tok = AutoTokenizer.from_pretrained(tiny_models("qwen2"))
    model = AutoModelForCausalLM.from_pretrained(tiny_models("qwen2"), attn_implementation="eager")
    with torch.no_grad():
        ref = model(torch.tensor([tok(prompt)["input_ids"]]), output_attentions=True).attentions[1][0].numpy()
    assert result["weights"].shape == ref.shape
    assert np.allclose(result["weights"], ref, atol=1e-4)
    assert result["kv_head_of"] == [0, 0, 0, 1, 1, 1]


def test_a_newer_request_of_the_same_group_cancels_the_older(worker):
    outcome = {}

    def slow():
        try:
            outcome["items"] = list(worker.generate("def", max_new_tokens=100, group="gen"))
        except Cancelled:
            outcome["cancelled"] = True

    t = threading.Thread(target=slow)
    t.start()
    quick = list(worker.generate("x", max_new_tokens=2, group="gen"))
    t.join(timeout=60)
    assert len(quick) == 2
    assert outcome.get("cancelled") or len(outcome.get("items", [])) < 100


def test_oversized_request_fails_cleanly_and_the_worker_keeps_serving(worker):
    with pytest.raises(RemoteError) as err:
        worker.attention("a " * 400, layer=0)
    assert "longer" in str(err.value) or "positions" in str(err.value)
    assert worker.summary()["num_layers"] == 3
    assert worker.next_tokens("def", k=3)["ids"]


def test_cli_attention_json_contract(tiny_models):
    proc = run_cli("attention", str(tiny_models("llama")), "--prompt", "hello world", "--layer", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    w = np.array(out["weights"])
    assert w.shape == (out["num_heads"], len(out["tokens"]), len(out["tokens"]))
    assert np.allclose(w.sum(-1), 1, atol=1e-5) and np.allclose(np.triu(w, 1), 0)
    assert out["layer"] == 1 and out["num_key_value_heads"] == 2 and out["kv_head_of"] == [0, 0, 1, 1]
    assert len(out["token_ids"]) == len(out["tokens"])


def test_cli_lens_last_layer_is_the_model_output(tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_models("llama")
    proc = run_cli("lens", str(folder), "--prompt", "the quick brown", "--top", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["layers"]) == 2
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = AutoTokenizer.from_pretrained(folder)("the quick brown")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0], -1)
    top = torch.topk(probs, 3, -1)
    assert out["layers"][-1]["top_ids"] == top.indices.tolist()
    assert np.allclose(out["layers"][-1]["top_probs"], top.values.numpy(), atol=1e-5)


def test_cli_generate_is_greedy_and_deterministic(tiny_models):
    a = run_cli("generate", str(tiny_models("llama")), "--prompt", "def", "--max-new-tokens", "4", "--json")
    b = run_cli("generate", str(tiny_models("llama")), "--prompt", "def", "--max-new-tokens", "4", "--json")
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout) and len(json.loads(a.stdout)["token_ids"]) == 4


@pytest.mark.parametrize("args,words", [
    (["attention", "--prompt", ""], "empty"),
    (["attention", "--prompt", "x", "--layer", "7"], "out of range"),
    (["lens", "--prompt", "a " * 400], "positions"),
])
def test_cli_forward_bad_input(tiny_models, args, words):
    cmd, *rest = args
    proc = run_cli(cmd, str(tiny_models("llama")), *rest)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_missing_tokenizer(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_models("llama") / f, folder / f)
    proc = run_cli("attention", str(folder), "--prompt", "hi")
    assert proc.returncode == 2 and "tokenizer" in proc.stderr, proc.stderr
