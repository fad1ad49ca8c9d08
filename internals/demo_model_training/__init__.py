"""Training and inspection code for the small demo model shipped in `internals/demo_model/`.

- `python -m internals.demo_model_training.train --out internals/demo_model` re-trains it (2 CPU cores).
- `internals.demo_model_training.heads` measures previous-token and induction heads, held-out loss and the
  unigram entropy of a text.
- `internals.demo_model_training.init_weights.initial_model(path)` rebuilds the exact untrained weights.

Importing this package is cheap; torch and transformers are imported when a helper below is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from internals.demo_path import demo_model_path

__all__ = ["demo_model_path", "load_demo_model"]


def load_demo_model(path: str | Path | None = None, attn_implementation: str = "eager") -> tuple[Any, Any]:
    """(model, tokenizer) of the shipped demo model, in eval mode. Eager attention so that
    `output_attentions=True` works."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path) if path is not None else demo_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn_implementation)
    model.eval()
    return model, tokenizer
