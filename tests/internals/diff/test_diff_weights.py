"""Planted changes of known rank and size: the diff finds exactly them, exactly."""

from __future__ import annotations

import math
import time

import pytest
from diff_support import plant, planted_sides, untie

from internals.diff import diff_weights, open_sides
from internals.diff.cache import DiffCache

# stored tensors to change in each architecture: name -> (rank, relative change)
PLANTS = {
    "llama": {"model.layers.0.self_attn.q_proj.weight": (3, 0.2), "model.layers.1.mlp.down_proj.weight": (1, 0.05),
              "lm_head.weight": (5, 0.01)},
    "qwen2": {"model.layers.2.self_attn.k_proj.weight": (2, 0.3), "model.embed_tokens.weight": (4, 0.02)},
    "gpt2": {"transformer.h.0.attn.c_attn.weight": (3, 0.1), "transformer.h.1.mlp.c_proj.weight": (2, 0.5)},
    "mixtral": {"model.layers.1.self_attn.o_proj.weight": (4, 0.25)},
}


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_planted_changes_found_exactly(kind, tiny_models, tmp_path):
    base = tiny_models(kind)
    with planted_sides(base, tmp_path, PLANTS[kind]) as (sides, expected):
        result = diff_weights(sides, rank=True)
    assert result["kind"] == "full" and result["only_in_base"] == [] and result["only_in_tuned"] == []
    by_name = {t["name"]: t for t in result["tensors"]}
    assert len(by_name) == len(result["tensors"])
    changed = {t["name"] for t in result["tensors"] if t["delta_norm"] > 0}
    assert changed == set(expected)
    for name, exp in expected.items():
        t = by_name[name]
        assert t["rel_change"] == pytest.approx(exp["rel_change"], abs=1e-6)
        assert t["rel_change"] == pytest.approx(exp["planted_rel"], rel=1e-5)
        assert t["rank"]["effective_rank_99"] == exp["rank"]
        assert t["rank"]["effective_rank_90"] <= exp["rank"]
        s = t["rank"]["singular_values"]
        assert s == sorted(s, reverse=True) and len(s) == min(64, min(t["shape"]))
        assert math.isclose(math.sqrt(sum(v * v for v in s)), t["delta_norm"], rel_tol=1e-6)
        assert 1.0 - 1e-9 <= t["rank"]["stable_rank"] <= exp["rank"] + 1e-9
        assert sum(t["histogram"]["counts"]) == math.prod(t["shape"])
        assert t["histogram"]["edges"][0] == pytest.approx(-t["max_abs_change"]) or \
            t["histogram"]["edges"][-1] == pytest.approx(t["max_abs_change"])
        assert -1 <= t["cosine"] < 1
    for t in result["tensors"]:
        if t["name"] not in expected:
            assert t["delta_norm"] == 0 and t["max_abs_change"] == 0 and t["rel_change"] == 0
            assert t["cosine"] == pytest.approx(1.0)
            assert t["rank"] is None or t["rank"]["effective_rank_99"] == 0
    # groups combine exactly
    comps = result["aggregates"]["by_component"]
    assert sum(g["tensors"] for g in comps.values()) == len(result["tensors"])
    total_delta = math.sqrt(sum(t["delta_norm"] ** 2 for t in result["tensors"]))
    assert math.sqrt(sum(g["delta_norm"] ** 2 for g in comps.values())) == pytest.approx(total_delta, rel=1e-12)
    layers = result["aggregates"]["by_layer"]
    for i, g in enumerate(layers):
        members = [t for t in result["tensors"] if f".{i}." in t["name"]]
        assert (g is None) == (not members)
        if g:
            assert g["delta_norm"] == pytest.approx(math.sqrt(sum(t["delta_norm"] ** 2 for t in members)), rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kernels_agree_with_torch_blocks(dtype, tiny_models, tmp_path):
    """The numba kernels (whole tensor) and the float64 torch blocks of a few rows give the same figures."""
    from internals.diff.matching import match_models
    from internals.diff.rank import gram_singular_values
    from internals.diff.weights import diff_tensor, diff_tensor_blocks

    base = tiny_models("qwen2", dtype)
    with planted_sides(base, tmp_path, {"model.layers.0.mlp.down_proj.weight": (3, 0.1)}) as (sides, _):
        pairs = {p.name: p for p in match_models(sides.base, sides.tuned).pairs}
        for name in ("model.layers.0.mlp.down_proj.weight", "model.norm.weight"):
            one = diff_tensor(pairs[name], sides.base.store, sides.tuned.store)
            many = diff_tensor_blocks(pairs[name], sides.base.store, sides.tuned.store, chunk_elements=37)
            for key in ("base_norm", "delta_norm", "rel_change", "cosine", "max_abs_change"):
                assert many[key] == pytest.approx(one[key], rel=1e-12, abs=1e-15)
            assert many["histogram"] == one["histogram"]
        pair = pairs["model.layers.0.mlp.down_proj.weight"]  # 96 x 160: wide, Gram by column blocks
        import torch

        full = (sides.tuned.store.tensor(pair.tuned).double() - sides.base.store.tensor(pair.base).double())
        ref = torch.linalg.svdvals(full)
        got = gram_singular_values(pair, sides.base.store, sides.tuned.store, chunk_elements=500)
        assert torch.allclose(torch.sort(got, descending=True).values[:3], ref[:3], rtol=1e-9)


@pytest.mark.parametrize("shape", [(640, 48), (40, 520)])
def test_float32_gram_blocks_keep_the_planted_rank(shape, tmp_path):
    """The float32 block products of large matrices (forced here on small ones, tall and wide): the planted
    rank and the leading singular values of float64 svdvals."""
    import torch
    from diff_support import low_rank_delta
    from safetensors.torch import save_file

    from internals.diff.matching import TensorPair
    from internals.diff.rank import gram_singular_values, rank_info
    from internals.weights import WeightStore

    w = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    t = (w.double() + low_rank_delta(shape, 4, 3.0)).to(torch.bfloat16)
    save_file({"m": w.contiguous()}, tmp_path / "a.safetensors")
    save_file({"m": t.contiguous()}, tmp_path / "b.safetensors")
    pair = TensorPair(name="m", shape=shape, base="m", tuned="m")
    stores = WeightStore([tmp_path / "a.safetensors"]), WeightStore([tmp_path / "b.safetensors"])
    ref = torch.linalg.svdvals(t.double() - w.double())
    got = torch.sort(gram_singular_values(pair, *stores, chunk_elements=5000, float32=True), descending=True).values
    assert torch.allclose(got[:4], ref[:4], rtol=1e-6)
    assert rank_info(got)["effective_rank_99"] == rank_info(ref)["effective_rank_99"] == 4


def test_histogram_matches_numpy(tiny_models, tmp_path):
    import numpy as np
    from safetensors.torch import load_file

    base = tiny_models("llama")
    with planted_sides(base, tmp_path, {"model.layers.0.mlp.up_proj.weight": (2, 0.3)}) as (sides, _):
        t = diff_weights(sides, pattern="model.layers.0.mlp.up_proj.weight", bins=17)["tensors"][0]
    name = "model.layers.0.mlp.up_proj.weight"
    d = load_file(tmp_path / "tuned" / "model.safetensors")[name].double() - load_file(base / "model.safetensors")[name].double()
    counts, edges = np.histogram(d.numpy(), bins=17)
    assert t["histogram"]["counts"] == counts.tolist()
    assert np.allclose(t["histogram"]["edges"], edges, rtol=0, atol=1e-15)
    assert t["max_abs_change"] == float(d.abs().max())


def test_tied_base_matches_untied_tuned(tiny_models, tmp_path):
    base = tiny_models("llama-tied")
    tuned = tmp_path / "untied"
    rel = untie(base, tuned, rank=2, rel=0.1)
    sides = open_sides(str(base), str(tuned))
    try:
        result = diff_weights(sides, rank=True)
    finally:
        sides.close()
    by_name = {t["name"]: t for t in result["tensors"]}
    assert by_name["lm_head.weight"]["rel_change"] == pytest.approx(rel, abs=1e-6)
    assert by_name["lm_head.weight"]["rank"]["effective_rank_99"] == 2
    assert by_name["model.embed_tokens.weight"]["delta_norm"] == 0
    assert [n for n, t in by_name.items() if t["delta_norm"]] == ["lm_head.weight"]
    assert result["only_in_base"] == [] and result["only_in_tuned"] == []
    # and the other way round: untied base, tied tuned
    sides = open_sides(str(tuned), str(base))
    try:
        back = {t["name"]: t for t in diff_weights(sides)["tensors"]}
    finally:
        sides.close()
    assert back["lm_head.weight"]["delta_norm"] == pytest.approx(by_name["lm_head.weight"]["delta_norm"], rel=1e-12)


def test_tensor_only_in_one_side_is_listed(tiny_models, tmp_path):
    from safetensors.torch import load_file, save_file

    base = tiny_models("llama")
    tuned = tmp_path / "tuned"
    plant(base, tuned, {})
    tensors = load_file(tuned / "model.safetensors")
    dropped = tensors.pop("model.layers.1.post_attention_layernorm.weight")
    import torch

    tensors["extra.scale"] = torch.ones_like(dropped)
    save_file(tensors, tuned / "model.safetensors", metadata={"format": "pt"})
    sides = open_sides(str(base), str(tuned))
    try:
        result = diff_weights(sides)
    finally:
        sides.close()
    assert result["only_in_base"] == ["model.layers.1.post_attention_layernorm.weight"]
    assert result["only_in_tuned"] == ["extra.scale"]
    assert all(t["delta_norm"] == 0 for t in result["tensors"])


def test_rank_is_cached_by_file_identity(tiny_models, tmp_path):
    base = tiny_models("qwen2")
    with planted_sides(base, tmp_path, {"model.layers.0.self_attn.q_proj.weight": (2, 0.1)}) as (sides, _):
        first = diff_weights(sides, rank=True)
        cache = DiffCache(list(sides.base.source.weight_files), sides.tuned_files())
        assert cache.path.is_file()
        start = time.perf_counter()
        second = diff_weights(sides, rank=True)
        assert time.perf_counter() - start < 0.2
        assert second == first
        # a rewritten file is a different identity: recomputed, not read
        (tmp_path / "tuned" / "model.safetensors").touch()
        assert DiffCache(list(sides.base.source.weight_files), sides.tuned_files()).path != cache.path
        assert diff_weights(sides, rank=True, use_cache=False) == first
