"""Shared fixtures: tiny real transformers models saved as real safetensors folders.

Models are built once per test session (random weights, fixed seeds) under a session temp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite runs on the CPU, workers spawned by tests included (they inherit this), even on a GPU machine;
# LLM_INTERNALS_TEST_CUDA=1 lets the tests marked `cuda` see the GPU (scripts/gpu-check runs them so).
CUDA_TESTS = os.environ.get("LLM_INTERNALS_TEST_CUDA") == "1"
if not CUDA_TESTS:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

from tests_helpers import DATA, REPO  # noqa: F401,E402 - re-exported for fixtures

TINY_CONFIGS: dict[str, dict] = {
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=256, max_position_embeddings=128,
                  tie_word_embeddings=False),
    "llama-long": dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, vocab_size=256, max_position_embeddings=65536,
                       tie_word_embeddings=False),
    "llama-tied": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, vocab_size=256, max_position_embeddings=128,
                       tie_word_embeddings=True),
    "qwen2": dict(model_type="qwen2", hidden_size=96, intermediate_size=160, num_hidden_layers=3,
                  num_attention_heads=6, num_key_value_heads=2, vocab_size=300, max_position_embeddings=128,
                  tie_word_embeddings=False, rope_theta=10000.0),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=128),
    "mistral-sliding": dict(model_type="mistral", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                            max_position_embeddings=128, sliding_window=5, tie_word_embeddings=False),
    "mixtral": dict(model_type="mixtral", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_local_experts=4,
                    num_experts_per_tok=2, max_position_embeddings=128, tie_word_embeddings=False),
    # soft-capped attention logits (gemma2's defaults: 50 and 30) and alternating sliding-window layers
    "gemma2": dict(model_type="gemma2", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=256,
                   max_position_embeddings=128, sliding_window=8, tie_word_embeddings=True),
    # mixture-of-experts families (expert weights and routing tests)
    "qwen2_moe": dict(model_type="qwen2_moe", hidden_size=64, intermediate_size=96, moe_intermediate_size=48,
                      shared_expert_intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, num_experts=8, num_experts_per_tok=2,
                      norm_topk_prob=False, max_position_embeddings=128, tie_word_embeddings=False),
    "qwen3_moe": dict(model_type="qwen3_moe", hidden_size=64, intermediate_size=96, moe_intermediate_size=48,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      vocab_size=256, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                      max_position_embeddings=128, tie_word_embeddings=False),
    "olmoe": dict(model_type="olmoe", hidden_size=64, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, vocab_size=256, num_experts=8,
                  num_experts_per_tok=2, max_position_embeddings=128, tie_word_embeddings=False),
    "deepseek_v3": dict(model_type="deepseek_v3", hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
                        q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                        n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1, n_shared_experts=1,
                        routed_scaling_factor=2.5, norm_topk_prob=True, vocab_size=256,
                        max_position_embeddings=128, tie_word_embeddings=False),
}


def build_tiny_model(kind: str, folder: Path, dtype: str = "float32", seed: int = 0) -> Path:
    """Save a tiny random `kind` model (plus a byte-level tokenizer) as a real HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(TINY_CONFIGS[kind])
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype)).eval()
    with torch.no_grad():  # spread values so statistics are not all alike
        for i, p in enumerate(model.parameters()):
            p.add_(torch.randn_like(p) * 0.01 * (1 + i % 5))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    _save_byte_tokenizer(folder, config.vocab_size)
    return folder


def _save_byte_tokenizer(folder: Path, vocab_size: int) -> None:
    """A real byte-level BPE tokenizer (tokenizers library) with `vocab_size` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = ["def __init__(self, value):\n    self.value = value\n    return None\n" * 3,
            "The quick brown fox jumps over the lazy dog. " * 5]
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Factory: tiny_models(kind, dtype="float32") -> folder path (built once per session)."""
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[tuple[str, str], Path] = {}

    def get(kind: str, dtype: str = "float32") -> Path:
        key = (kind, dtype)
        if key not in built:
            built[key] = build_tiny_model(kind, root / f"{kind}-{dtype}", dtype)
        return built[key]

    return get


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test gets its own statistics cache (so tests never see each other's numbers) and default keys."""
    monkeypatch.setenv("LLM_INTERNALS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LLM_INTERNALS_KEYMAP", str(tmp_path / "no-keymap.json"))  # never the user's own keys
    monkeypatch.setenv("LLM_INTERNALS_PROGRESS", str(tmp_path / "progress.json"))  # never the user's lessons
    yield


@pytest.fixture
def fresh_spectrum_cache():
    """The spectrum engine's in-memory cache empty and the disk cache on (its files go to the private cache),
    before and after the test; the spectrum tests use it as `pytestmark = pytest.mark.usefixtures(...)`."""
    from internals.spectrum import cache

    cache.clear_memory()
    cache.use_cache(True)
    yield cache
    cache.clear_memory()


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked `cuda` unless LLM_INTERNALS_TEST_CUDA=1 and torch sees a CUDA GPU."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    reason = None
    if not CUDA_TESTS:
        reason = "CUDA tests run only with LLM_INTERNALS_TEST_CUDA=1 (scripts/gpu-check)"
    else:
        import torch

        if not torch.cuda.is_available():
            reason = "LLM_INTERNALS_TEST_CUDA=1 but torch sees no CUDA GPU"
    if reason:
        for item in cuda_items:
            item.add_marker(pytest.mark.skip(reason=reason))
