"""The module tree, the stored-tensor map and the summary facts, on real tiny models and the 1.5B config."""

from __future__ import annotations

import math

import pytest

from internals.model import open_model
from tests_helpers import DATA

REFERENCE_CONFIG = DATA / "deepseek-r1-distill-qwen-1.5b.config.json"


def test_reference_config_counts_exactly():
    s = open_model(str(REFERENCE_CONFIG)).summary()
    assert s["total_parameters"] == 1_777_088_000
    assert s["parameters_by_component"]["embedding"] == 233_373_696
    assert s["parameters_by_component"]["lm_head"] == 233_373_696
    assert sum(s["parameters_by_component"].values()) == s["total_parameters"]
    layer = s["layers"][0]
    assert (layer["attention"], layer["mlp"], layer["norm"]) == (5_507_072, 41_287_680, 3_072)
    assert len(s["layers"]) == 28
    assert s["num_attention_heads"] == 12 and s["num_key_value_heads"] == 2 and s["gqa_group_size"] == 6
    assert s["head_dim"] == 128 and s["intermediate_size"] == 8960 and s["vocab_size"] == 151936
    assert s["mlp_kind"] == "SwiGLU" and s["norm"] == {"kind": "RMSNorm", "eps": 1e-6}
    assert s["rope"]["theta"] == 10000.0
    assert s["attention_bias"] == {"q": True, "k": True, "v": True, "o": False}
    assert s["kv_cache_bytes_per_token"]["bf16"] == 28 * 1024
    assert s["memory_bytes"]["bf16"] == 2 * 1_777_088_000
    assert s["stored_dtype"] == "bfloat16" and s["embeddings_shared"] is None
    assert s["tie_word_embeddings"] is False and s["num_experts"] is None
    assert s["source_kind"] == "config"


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2", "mixtral", "llama-tied"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_counts_match_transformers(tiny_models, kind, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_models(kind, dtype)
    real = AutoModelForCausalLM.from_pretrained(folder)
    opened = open_model(str(folder))
    s = opened.summary()
    assert s["total_parameters"] == sum(p.numel() for p in real.parameters())
    assert sum(s["parameters_by_component"].values()) == s["total_parameters"]
    assert s["stored_dtype"] == dtype
    names = {n for n, _ in real.named_parameters(remove_duplicate=False)}
    assert set(opened.structure.params) == names
    shapes = {n: tuple(p.shape) for n, p in real.named_parameters(remove_duplicate=False)}
    assert all(tuple(info.shape) == shapes[n] for n, info in opened.structure.params.items())
    assert opened.structure.missing == [] and opened.structure.unmapped_stored == []
    # every directly stored parameter reads back exactly the values transformers loaded
    for name, info in opened.structure.params.items():
        if info.direct:
            stored = opened.store.tensor(info.direct)
            assert torch.equal(stored, dict(real.named_parameters(remove_duplicate=False))[name].detach()), name


def test_tied_embeddings_count_once_and_are_reported(tiny_models):
    s = open_model(str(tiny_models("llama-tied"))).summary()
    assert s["tie_word_embeddings"] is True and s["embeddings_shared"] is True
    assert s["parameters_by_component"]["lm_head"] == 0
    tree = open_model(str(tiny_models("llama-tied"))).tree()
    head = next(n for n in tree if n["name"] == "lm_head.weight")
    assert head["tied_to"] == "model.embed_tokens.weight"
    untied = open_model(str(tiny_models("llama"))).summary()
    assert untied["embeddings_shared"] is False and untied["parameters_by_component"]["lm_head"] == 256 * 64


def test_moe_layout_is_mapped_and_reported(tiny_models):
    opened = open_model(str(tiny_models("mixtral")))
    s = opened.summary()
    assert s["num_experts"] == 4 and s["num_experts_per_token"] == 2
    assert "converted" in s["layout"]
    fused = opened.structure.params["model.layers.0.mlp.experts.gate_up_proj"]
    assert fused.converted and len(fused.stored) == 8
    assert all("block_sparse_moe.experts" in n for n in fused.stored)
    router = opened.structure.params["model.layers.0.mlp.gate.weight"]
    assert router.component == "router" and router.stored == ["model.layers.0.block_sparse_moe.gate.weight"]
    # stored values of the fused tensor are the stored per-expert tensors, element for element
    stored_total = sum(opened.store.entry(n).numel for n in fused.stored)
    assert stored_total == fused.numel


def test_gpt2_components(tiny_models):
    opened = open_model(str(tiny_models("gpt2")))
    comps = {n: p.component for n, p in opened.structure.params.items()}
    assert comps["transformer.h.0.attn.c_attn.weight"] == "qkv"
    assert comps["transformer.h.0.attn.c_proj.weight"] == "o"
    assert comps["transformer.h.0.mlp.c_fc.weight"] == "up"
    assert comps["transformer.h.0.mlp.c_proj.weight"] == "down"
    assert comps["transformer.h.0.ln_1.weight"] == "norm"
    assert comps["transformer.wte.weight"] == "embedding"
    assert opened.summary()["mlp_kind"] == "dense"


def test_tree_nodes_follow_the_contract(tiny_models):
    tree = open_model(str(tiny_models("qwen2"))).tree()
    root = tree[0]
    assert root["name"] == "" and root["class"] == "Qwen2ForCausalLM" and root["parent"] is None
    names = [n["name"] for n in tree]
    assert len(names) == len(set(names))
    by_name = {n["name"]: n for n in tree}
    q = by_name["model.layers.2.self_attn.q_proj.weight"]
    assert q["kind"] == "parameter" and q["shape"] == [96, 96] and q["component"] == "q" and q["layer"] == 2
    assert by_name["model.layers.2.self_attn.q_proj"]["class"] == "Linear"
    assert root["numel"] == open_model(str(tiny_models("qwen2"))).summary()["total_parameters"]
    assert all(n["parent"] in by_name for n in tree[1:])


def test_single_safetensors_file_tree_from_names(tiny_models):
    folder = tiny_models("llama")
    opened = open_model(str(folder / "model.safetensors"))
    s = opened.summary()
    assert s["source_kind"] == "safetensors" and s["architecture"] is None
    assert s["num_layers"] == 2 and s["total_parameters"] == open_model(str(folder)).summary()["total_parameters"]
    assert "no config" in s["layout"]
    assert any(n["name"] == "model.layers.1.mlp" for n in opened.tree())


def test_sharded_folder(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models("llama"))
    model.save_pretrained(tmp_path / "sharded", max_shard_size="50KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    opened = open_model(str(tmp_path / "sharded"))
    assert len(opened.source.weight_files) > 1
    assert opened.summary()["total_parameters"] == sum(p.numel() for p in model.parameters())
    assert opened.structure.missing == []


def test_bare_config_has_no_weights():
    opened = open_model(str(REFERENCE_CONFIG))
    assert opened.store is None
    assert math.prod(opened.structure.params["lm_head.weight"].shape) == 151936 * 1536
