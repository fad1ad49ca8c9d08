"""The shipped demo model (internals/demo_model/): everything here is recomputed from the shipped files."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from internals.demo_path import demo_model_path

REQUIRED_FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "README.md",
    "training_log.csv",
    "init.json",
    "heldout_sample.txt",
]


@pytest.fixture(scope="module")
def folder() -> Path:
    path = demo_model_path()
    assert path.is_dir(), f"{path} is missing: run python -m internals.demo_model_training.train --out {path}"
    return path


@pytest.fixture(scope="module")
def loaded(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def sample_text(folder) -> str:
    return (folder / "heldout_sample.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def card(folder) -> str:
    return (folder / "README.md").read_text(encoding="utf-8")


def test_demo_path_imports_no_torch():
    code = "import sys, internals.demo_path as d; p = d.demo_model_path(); assert 'torch' not in sys.modules; print(p)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == demo_model_path()


def test_folder_files_and_size(folder):
    for name in REQUIRED_FILES:
        assert (folder / name).is_file(), name
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"demo model folder: {size / 1e6:.2f} MB")
    assert size < 20 * 1024 * 1024


def test_config_matches_reference_family(folder, loaded):
    model, _ = loaded
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert config["num_key_value_heads"] < config["num_attention_heads"]
    assert config["num_attention_heads"] % config["num_key_value_heads"] == 0
    assert config["tie_word_embeddings"] is False
    assert config["hidden_act"] == "silu"
    assert config["rope_parameters"]["rope_type"] == "default"
    names = dict(model.named_parameters())
    assert {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias"} <= names.keys()
    assert "model.layers.0.self_attn.v_proj.bias" in names
    assert "model.layers.0.self_attn.o_proj.bias" not in names
    assert {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"} <= names.keys()
    assert type(model.model.norm).__name__ == "Qwen2RMSNorm"
    # untied: a separate lm_head with its own values
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr()
    assert not torch.equal(emb, head)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_tokenizer_round_trip(loaded, sample_text):
    _, tokenizer = loaded
    # AutoTokenizer builds a Qwen2Tokenizer for a qwen2 folder; the shipped tokenizer was trained with its pipeline
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert len(tokenizer) == 4096
    assert tokenizer.eos_token == "<|endoftext|>"
    ids = tokenizer(sample_text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == sample_text
    text = "def f(x):\n    return x  # ünïcode\n"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_heldout_loss_well_below_unigram_entropy(loaded, sample_text, card):
    from internals.demo_model_training import heads

    model, tokenizer = loaded
    ids = heads.text_token_ids(tokenizer, sample_text)
    loss = heads.mean_loss(model, heads.text_windows(ids, 128))
    entropy = heads.unigram_entropy(ids)
    print(f"held-out sample: {len(ids)} tokens, loss {loss:.3f} nats/token, unigram entropy {entropy:.3f}")
    assert loss < entropy - 1.0
    # the card reports the same numbers
    row = re.search(r"`heldout_sample.txt` \([\d,]+ tokens\) \| ([\d.]+) \| ([\d.]+) \|", card)
    assert row, "sample row missing from the model card"
    assert float(row.group(1)) == pytest.approx(loss, abs=0.01)
    assert float(row.group(2)) == pytest.approx(entropy, abs=0.01)


def _card_heads(card: str, label: str) -> dict[tuple[int, int], float]:
    pattern = rf"^- layer (\d+) head (\d+): {label} ([\d.]+)$"
    return {(int(layer), int(h)): float(s) for layer, h, s in re.findall(pattern, card, flags=re.M)}


def test_previous_token_and_induction_heads(loaded, sample_text, card):
    from internals.demo_model_training import heads

    model, tokenizer = loaded
    windows = heads.text_windows(heads.text_token_ids(tokenizer, sample_text), 128)
    prev = heads.previous_token_scores(model, windows)
    ind = heads.induction_scores(model, tokenizer)
    assert prev.shape == ind.shape == (model.config.num_hidden_layers, model.config.num_attention_heads)
    prev_heads = heads.top_heads(prev, 0.5)
    ind_heads = heads.top_heads(ind, 0.3)
    print("previous-token heads:", [(layer, h, round(s, 3)) for layer, h, s in prev_heads])
    print("induction heads:", [(layer, h, round(s, 3)) for layer, h, s in ind_heads])
    assert prev_heads, f"no previous-token head; best {prev.max():.3f}"
    assert ind_heads, f"no induction head; best {ind.max():.3f}"
    # the heads named in the model card are the ones measured here
    for label, found in (("previous-token score", prev_heads), ("induction score", ind_heads)):
        named = _card_heads(card, label)
        assert set(named) == {(layer, h) for layer, h, _ in found}, label
        for layer, h, s in found:
            assert named[(layer, h)] == pytest.approx(s, abs=0.02)


def test_greedy_continuation_looks_like_python(loaded):
    from internals.demo_model_training import heads

    model, tokenizer = loaded
    text = heads.greedy_continuation(model, tokenizer, "def __init__(self", max_new_tokens=24)
    print("def __init__(self ->", repr(text))
    assert "):" in text or "self." in text


def test_initial_weights_rebuilt_exactly(folder, loaded):
    from internals.demo_model_training.init_weights import checksums, initial_model, read_init

    info = read_init(folder)
    init = initial_model(folder)
    sums = checksums(init)
    assert sums["sha256"] == info["sha256"]
    assert sums["tensors"].keys() == info["tensors"].keys()
    for name, stats in info["tensors"].items():
        assert sums["tensors"][name]["sum"] == pytest.approx(stats["sum"], abs=1e-6)
    trained, _ = loaded
    assert checksums(trained)["sha256"] != info["sha256"]  # training moved the weights
    assert set(init.state_dict()) == set(trained.state_dict())


def test_training_log(folder):
    with (folder / "training_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"step", "loss", "lr", "tokens_seen", "heldout_loss"} <= rows[0].keys()
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps)
    tokens = [int(r["tokens_seen"]) for r in rows]
    assert tokens == sorted(tokens)
    evals = [float(r["heldout_loss"]) for r in rows if r["heldout_loss"]]
    assert len(evals) >= 2 and evals[-1] < evals[0] - 1.0
