"""A real peft LoRA adapter against peft's own merged model: the same change, computed from the factors."""

from __future__ import annotations

import json

import pytest
import torch

from internals.diff import diff_weights, open_sides
from internals.diff.adapter import open_adapter
from internals.diff.rank import lora_singular_values

CASES = {
    "plain": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])),
    "rslora": ("llama", dict(r=4, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "o_proj"])),
    "patterns": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "up_proj"],
                               rank_pattern={"up_proj": 2}, alpha_pattern={"layers.1.self_attn.q_proj": 32})),
    "embedding": ("llama", dict(r=3, lora_alpha=6, target_modules=["embed_tokens", "k_proj"])),
    "gpt2-fan-in-fan-out": ("gpt2", dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)),
}


def make_adapter(base_folder, out, seed=0, **lora):
    """Save a LoRA adapter with random non-zero B (peft), and peft's merged model, as real folders."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **lora))
    with torch.no_grad():  # LoRA B is random but small with init_lora_weights=False: make the change visible
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:  # (lora_embedding_B starts as randn already)
                p.mul_(50.0)
    peft_model.save_pretrained(str(out / "adapter"))
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(str(out / "merged"))
    return out / "adapter", out / "merged", lora.get("r", 8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_adapter_diff_equals_merged_diff(case, tiny_models, tmp_path):
    kind, lora = CASES[case]
    base = tiny_models(kind)
    adapter, merged, r = make_adapter(base, tmp_path, **lora)
    sides = open_sides(str(base), str(adapter))
    try:
        assert sides.kind == "adapter"
        got = diff_weights(sides, rank=True)
    finally:
        sides.close()
    sides = open_sides(str(base), str(merged))
    try:
        ref = diff_weights(sides, rank=True)
    finally:
        sides.close()
    assert got["kind"] == "adapter"
    ref_by = {t["name"]: t for t in ref["tensors"]}
    changed = [t for t in got["tensors"] if t["delta_norm"] > 0]
    assert changed, "the adapter changed nothing"
    assert {t["name"] for t in changed} == {t["name"] for t in ref["tensors"] if t["delta_norm"] > 0}
    for t in got["tensors"]:
        m = ref_by[t["name"]]
        for key in ("base_norm", "delta_norm", "rel_change", "cosine", "max_abs_change"):
            assert t[key] == pytest.approx(m[key], rel=1e-5, abs=1e-5), (t["name"], key)
        assert t["histogram"]["edges"] == pytest.approx(m["histogram"]["edges"], rel=1e-5, abs=1e-5)
        if t["delta_norm"] > 0:
            assert t["rank"]["effective_rank_99"] <= r and t["rank"]["effective_rank_90"] <= r
            k = len(t["rank"]["singular_values"])
            assert t["rank"]["singular_values"] == pytest.approx(m["rank"]["singular_values"][:k], rel=1e-5, abs=1e-5)
    assert got["aggregates"]["by_component"].keys() == ref["aggregates"]["by_component"].keys()


def test_rank_pattern_and_scale_are_read(tiny_models, tmp_path):
    adapter, _, _ = make_adapter(tiny_models("llama"), tmp_path, **CASES["patterns"][1])
    a = open_adapter(adapter)
    try:
        up = a.factors["model.layers.0.mlp.up_proj.weight"]
        assert (up.rank, up.alpha, up.scale) == (2, 8.0, 4.0)
        q1 = a.factors["model.layers.1.self_attn.q_proj.weight"]
        assert (q1.rank, q1.alpha, q1.scale) == (4, 32.0, 8.0)
        q0 = a.factors["model.layers.0.self_attn.q_proj.weight"]
        assert (q0.rank, q0.scale) == (4, 2.0)
    finally:
        a.close()


def test_lora_core_singular_values_are_exact():
    g = torch.Generator().manual_seed(0)
    b, a = torch.randn(50, 5, generator=g, dtype=torch.float64), torch.randn(5, 30, generator=g, dtype=torch.float64)
    s = lora_singular_values(a, b, 0.7)
    assert torch.allclose(s, torch.linalg.svdvals(0.7 * b @ a)[:5], rtol=1e-10)


def test_adapter_config_names_the_rank(tiny_models, tmp_path):
    """A rank in the file that disagrees with adapter_config.json is an error, not a silent rescale."""
    from internals.errors import UserError

    adapter, _, _ = make_adapter(tiny_models("llama"), tmp_path, r=4, lora_alpha=8, target_modules=["q_proj"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["r"] = 8
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="rank 4"):
        open_adapter(adapter)
