"""Fused expert parameters: statistics over all their stored tensors equal those of the concatenation, exactly;
per-expert slices match the expert slices of the parameter transformers builds at load time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from internals.errors import UserError
from internals.experts.weights import expert_parameters, fused_parameter_stats, router_parameters, router_summary
from internals.model import open_model
from internals.stats import compute_tensor_stats

TORCH_CODE = {torch.float32: "F32", torch.bfloat16: "BF16"}


def _concatenation_stats(opened, names, bins):
    tensors = [opened.store.tensor(n).reshape(-1) for n in names]
    flat = torch.cat(tensors).contiguous()
    raw = flat.view(torch.uint8).numpy()
    return compute_tensor_stats(raw, TORCH_CODE[flat.dtype], (flat.numel(),), bins).to_dict()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_stats_equal_the_concatenation_exactly(tiny_models, dtype):
    opened = open_model(str(tiny_models("mixtral", dtype)))
    names = expert_parameters(opened)
    assert names == [f"model.layers.{i}.mlp.experts.{k}" for i in range(2) for k in ("gate_up_proj", "down_proj")]
    for name in names:
        result = fused_parameter_stats(opened, name, bins=32)
        info = opened.structure.params[name]
        want = _concatenation_stats(opened, info.stored, 32)
        for key in ("numel", "mean", "std", "min", "max", "abs_mean", "rms", "l2_norm", "zeros", "nan", "inf",
                    "quantiles", "kurtosis", "histogram", "dtype"):
            assert result[key] == want[key], key
        assert result["name"] == name and result["shape"] == list(info.shape)
        assert result["numel"] == math.prod(info.shape)
        assert sum(result["histogram"]["counts"]) == result["numel"]
        assert [e["expert"] for e in result["experts"]] == [0, 1, 2, 3]
        for e in result["experts"]:
            one = _concatenation_stats(opened, e["stored"], 32)
            assert (e["l2_norm"], e["std"], e["kurtosis"]) == (one["l2_norm"], one["std"], one["kurtosis"])


def test_expert_slices_match_the_loaded_model(tiny_models):
    """Each expert's numbers describe the slice [e] of the fused parameter transformers builds."""
    from transformers import AutoModelForCausalLM

    folder = tiny_models("qwen3_moe", "float32")
    opened = open_model(str(folder))
    model = AutoModelForCausalLM.from_pretrained(folder)
    params = dict(model.named_parameters())
    for name in expert_parameters(opened):
        result = fused_parameter_stats(opened, name)
        fused = params[name].detach().double()
        assert list(fused.shape) == result["shape"]
        assert result["l2_norm"] == pytest.approx(float(fused.norm()), rel=1e-9)
        for e in result["experts"]:
            part = fused[e["expert"]]
            assert e["l2_norm"] == pytest.approx(float(part.norm()), rel=1e-9)
            assert e["std"] == pytest.approx(float(part.std(unbiased=False)), rel=1e-9)
            assert e["numel"] == part.numel()


def test_router_summary(tiny_models):
    opened = open_model(str(tiny_models("mixtral", "bfloat16")))
    names = router_parameters(opened)
    assert names == ["model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"]
    summary = router_summary(opened, names[1])
    weight = opened.store.tensor(opened.structure.params[names[1]].stored[0]).double().numpy()
    assert summary["layer"] == 1 and summary["num_experts"] == 4
    np.testing.assert_allclose(summary["row_norms"], np.linalg.norm(weight, axis=1), rtol=1e-12)
    cos = np.array(summary["cosine"])
    np.testing.assert_allclose(np.diag(cos), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cos, cos.T, atol=1e-15)
    a, b = weight[0], weight[2]
    assert cos[0, 2] == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), rel=1e-12)


def test_bad_requests_are_user_errors(tiny_models):
    opened = open_model(str(tiny_models("mixtral", "float32")))
    with pytest.raises(UserError, match="stored as one tensor"):
        fused_parameter_stats(opened, "model.layers.0.self_attn.q_proj.weight")
    with pytest.raises(UserError, match="no parameter named"):
        fused_parameter_stats(opened, "model.layers.9.mlp.experts.down_proj")
    with pytest.raises(UserError, match="not a router weight matrix"):
        router_summary(opened, "model.layers.0.input_layernorm.weight")


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3"])
def test_every_moe_family_opens_with_its_experts_and_routers(tiny_models, kind):
    from transformers import AutoConfig

    folder = tiny_models(kind, "bfloat16")
    opened = open_model(str(folder))
    nodes = opened.tree()
    config = AutoConfig.from_pretrained(folder)
    moe_layers = [i for i in range(config.num_hidden_layers) if i >= getattr(config, "first_k_dense_replace", 0)]
    experts = expert_parameters(opened)
    assert experts == [f"model.layers.{i}.mlp.experts.{k}" for i in moe_layers for k in ("gate_up_proj", "down_proj")]
    assert router_parameters(opened) == [f"model.layers.{i}.mlp.gate.weight" for i in moe_layers]
    fused = {n["name"]: n for n in nodes if n.get("stored") and len(n["stored"]) > 1}
    assert set(experts) <= set(fused)
    result = fused_parameter_stats(opened, experts[0], bins=16)
    assert result["numel"] == math.prod(result["shape"]) and result["dtype"] == "bfloat16"
    assert len(result["experts"]) == result["shape"][0]
    assert sum(e["numel"] for e in result["experts"]) == result["numel"]
    assert router_summary(opened, router_parameters(opened)[0])["num_experts"] == result["shape"][0]
