"""The CUDA paths against fp32 CPU references: default load, attention maps and the logit lens in bf16.

Marked `cuda`: skipped unless LLM_INTERNALS_TEST_CUDA=1 and torch sees a GPU (scripts/gpu-check runs them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_support import load_tiny, prompt_ids
from internals.demo_path import demo_model_path
from internals.inference.attention import attention_for_layer
from internals.inference.lens import logit_lens
from internals.inference.loading import load_for_inference
from internals.sources import resolve_source

pytestmark = pytest.mark.cuda

#: bf16 keeps 8 significant bits: with attention logits of ~10 (the trained demo model) the queries and keys
#: alone move probabilities by ~1e-2 (0.022 measured for bf16 on the CPU); fp32 maps agree to 1e-4.
BF16_ATTENTION_ATOL = 5e-2


def _load_cuda(folder, dtype=None):
    return load_for_inference(resolve_source(str(folder)), device="cuda", dtype=dtype)


def _cpu_eager_attentions(folder, ids):
    """transformers' own eager attention maps of the fp32 model on the CPU: the independent reference."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True, use_cache=False)
    return [a[0].float().numpy() for a in out.attentions]


def test_default_load_is_cuda_in_bf16_where_supported():
    loaded = load_for_inference(resolve_source(str(demo_model_path())))
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32  # never fp16 by default
    assert loaded.device.type == "cuda" and loaded.dtype == expected
    assert next(loaded.model.parameters()).dtype == expected


@pytest.mark.parametrize("kind", ["qwen2", "demo"])
def test_attention_on_cuda_bf16_matches_fp32_cpu_eager(tiny_models, kind):
    cpu = load_tiny(tiny_models, kind)
    folder = demo_model_path() if kind == "demo" else tiny_models(kind, "float32")
    gpu = _load_cuda(folder, "bfloat16")
    ids = prompt_ids(cpu, 40)
    reference = _cpu_eager_attentions(folder, ids)
    for layer, expected in enumerate(reference):
        got = attention_for_layer(gpu, ids, layer)
        w = got["weights"]
        assert w.dtype == np.float32 and w.shape == expected.shape
        np.testing.assert_allclose(w, expected, atol=BF16_ATTENTION_ATOL)
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-3)  # the maps are computed in float32
        assert np.all(w[:, np.triu(np.ones(w.shape[1:], dtype=bool), k=1)] == 0)
    binned = attention_for_layer(gpu, prompt_ids(cpu, 100), 0, bins=16)["weights"]
    assert binned.shape[1:] == (16, 16)
    np.testing.assert_allclose(binned.sum(-1), 1.0, atol=1e-3)


def test_lens_on_cuda_bf16_agrees_with_fp32_cpu_where_the_reference_is_decisive():
    """The demo model is trained (peaked predictions): where fp32's top-1 beats its top-2 by more than bf16
    rounding can move logits, the bf16 lens must pick the same token; its last layer is the model's output."""
    folder = demo_model_path()
    cpu = load_for_inference(resolve_source(str(folder)), device="cpu")
    gpu = _load_cuda(folder, "bfloat16")
    ids = cpu.tokenizer("def add(self, value):\n    self.total = self.total + value\n    return self.total\n")["input_ids"]
    ours, reference = logit_lens(gpu, ids, top_k=2), logit_lens(cpu, ids, top_k=2)
    decisive = agree = 0
    for a, b in zip(ours["layers"], reference["layers"]):
        for top_a, top_b, probs_b in zip(a["top_ids"], b["top_ids"], b["top_probs"]):
            if np.log(probs_b[0]) - np.log(probs_b[1]) > 0.1:
                decisive += 1
                agree += top_a[0] == top_b[0]
    assert decisive >= len(ids)  # at least one layer's worth of positions: the check is not vacuous
    assert agree == decisive
    with torch.no_grad():
        own = gpu.model(torch.tensor([ids], device="cuda")).logits[0].float()
    assert ours["layers"][-1]["top_ids"] == own.topk(2, -1).indices.cpu().tolist()
