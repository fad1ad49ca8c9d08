"""Loading for inference: devices, dtypes, progress, accelerate's big-model path and the errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from internals.errors import UserError
from internals.inference.errors import OutOfMemory
from internals.inference.loading import load_for_inference, parse_max_memory
from internals.sources import resolve_source


def test_parse_max_memory():
    assert parse_max_memory("0=20GiB,cpu=64GiB") == {0: "20GiB", "cpu": "64GiB"}
    assert parse_max_memory(" cuda:1 = 8GB , disk=100 ") == {1: "8GB", "disk": 100}
    for bad in ("", "0:20GiB", "gpu=1GiB", "0=20 gigs", "cpu="):
        with pytest.raises(UserError, match="max-memory"):
            parse_max_memory(bad)


def test_load_on_cpu_reports_progress(tiny_models):
    events = []
    loaded = load_for_inference(resolve_source(str(tiny_models("llama"))), device="cpu", dtype="bfloat16",
                                progress=lambda fraction, message: events.append((fraction, message)))
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.model.config._attn_implementation == "sdpa"  # memory-efficient; the attention view computes its layer aside
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("loading weights" in message for _, message in events)


def test_max_memory_uses_accelerate_offload_and_close_cleans_up(tiny_models):
    from internals.inference.attention import attention_for_layer

    loaded = load_for_inference(resolve_source(str(tiny_models("gpt2"))), max_memory="cpu=20KB")
    assert "disk" in set(loaded.model.hf_device_map.values())
    assert loaded.offload_dir is not None and loaded.offload_dir.is_dir()
    weights = attention_for_layer(loaded, [1, 2, 3, 4], -1)["weights"]
    assert abs(weights.sum(-1) - 1).max() < 1e-5
    folder = loaded.offload_dir
    loaded.close()
    assert not folder.exists()


def test_missing_tokenizer_is_a_user_error(tiny_models, tmp_path):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_models("llama") / name, folder / name)
    with pytest.raises(UserError, match="has no tokenizer"):
        load_for_inference(resolve_source(str(folder)))


def test_out_of_memory_while_loading_is_typed(tiny_models, monkeypatch):
    from transformers import AutoModelForCausalLM

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(OutOfMemory, match="out of GPU memory"):
        load_for_inference(resolve_source(str(tiny_models("llama"))), device="cpu")
