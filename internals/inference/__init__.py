"""The torch side of the worker: forward passes over a loaded model, returning plain data for the wire.

Every function takes a `Loaded` (model + tokenizer) and prompt token ids, and returns JSON-able Python data,
with numpy float32 arrays for the big arrays (attention maps, residual norms), so that nothing needs pickle.
Names are imported lazily: importing this package does not import torch until a function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Loaded": "loading", "load_for_inference": "loading", "load_tokenizer": "loading", "parse_max_memory": "loading",
    "OutOfMemory": "errors", "translate_oom": "errors",
    "tokenize": "tokens", "token_label": "tokens", "IncrementalDecoder": "tokens",
    "attention_for_layer": "attention",
    "logit_lens": "lens", "residual_norms": "lens", "activation_stats": "lens",
    "next_token_topk": "generation", "generate_stream": "generation",
    "embedding_neighbours": "neighbours",
    "residual_activations": "activations", "activation_patching": "patching",
    "direct_logit_attribution": "attribution", "lens_token_tracks": "lens",
    "render_chat_template": "chat_template",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
