"""The provisional tree read from file headers: what the explorer draws while its worker builds the exact one."""

from __future__ import annotations

import json
import shutil

import pytest

from internals.model import open_model
from internals.provisional_info import provisional_model_info, transformers_knows
from internals.sources import resolve_source


def _params(tree):
    return [(n["name"], n["shape"], n["numel"]) for n in tree if n["kind"] == "parameter"]


@pytest.mark.parametrize("kind", ["qwen2", "llama", "gpt2"])
def test_parameters_and_counts_match_the_exact_tree(tiny_models, kind):
    folder = tiny_models(kind)
    info = provisional_model_info(resolve_source(str(folder)))
    exact = open_model(str(folder))
    stored = {n: p for n, p in exact.structure.params.items() if p.tied_to is None}
    assert info["provisional"] and info["summary"]["provisional"]
    assert "provisional" in info["summary"]["layout"]
    assert {name for name, _, _ in _params(info["tree"])} == {p.stored[0] for p in stored.values()}
    assert info["summary"]["total_parameters"] == exact.summary()["total_parameters"]
    for key in ("architecture", "num_layers", "num_attention_heads", "num_key_value_heads", "vocab_size"):
        assert info["summary"][key] == exact.summary()[key], key


def test_order_follows_transformers_registration(tiny_models):
    folder = tiny_models("qwen2")
    provisional = [n["name"] for n in provisional_model_info(resolve_source(str(folder)))["tree"]]
    exact = [n["name"] for n in open_model(str(folder)).tree() if n["name"] in set(provisional)]
    assert provisional == exact  # embeddings, then q k v o (weight before bias), MLP, norms, final norm, head


def test_demo_model_has_a_provisional_tree():
    info = provisional_model_info(resolve_source(None))
    assert info["summary"]["architecture"] == "Qwen2ForCausalLM"
    assert any(n["name"] == "model.layers.0.self_attn.q_proj.weight" for n in info["tree"])


def test_none_when_only_the_worker_can_tell(tiny_models, tmp_path):
    config_only = resolve_source(str(tiny_models("llama") / "config.json"))
    assert provisional_model_info(config_only) is None  # the tree needs transformers
    unknown = tmp_path / "unknown"
    shutil.copytree(tiny_models("llama"), unknown)
    cfg = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**cfg, "model_type": "no-such-arch-xyz"}))
    assert provisional_model_info(resolve_source(str(unknown))) is None  # the worker's exact error instead
    remote = tmp_path / "remote"
    shutil.copytree(tiny_models("llama"), remote)
    (remote / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    assert provisional_model_info(resolve_source(str(remote))) is None
    assert provisional_model_info(resolve_source(str(tiny_models("llama"))), trust_remote_code=True) is None
    not_causal = tmp_path / "not-causal"
    shutil.copytree(tiny_models("llama"), not_causal)
    (not_causal / "config.json").write_text(json.dumps({**cfg, "architectures": ["LlamaForSequenceClassification"]}))
    assert provisional_model_info(resolve_source(str(not_causal))) is None


def test_transformers_knows_without_importing_it():
    assert transformers_knows("qwen2") and transformers_knows("llama")
    assert not transformers_knows("no-such-arch-xyz")
