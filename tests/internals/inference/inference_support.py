"""Shared helpers of the inference tests: tiny models loaded once per session.

Not a conftest.py on purpose: the root conftest is imported as the module `conftest` (tests import REPO from
it), and pytest replaces that module when it loads another conftest.py outside a package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from internals.inference.loading import Loaded, load_for_inference
from internals.sources import resolve_source

_LOADED: dict[Path, Loaded] = {}


def load_tiny(tiny_models: Any, kind: str, dtype: str = "float32") -> Loaded:
    """A tiny model of `kind` (or "demo", the shipped demo model) loaded for inference on CPU (cached: tests
    must not modify it)."""
    if kind == "demo":
        from internals.demo_path import demo_model_path

        folder = demo_model_path()
    else:
        folder = tiny_models(kind, dtype)
    if folder not in _LOADED:
        _LOADED[folder] = load_for_inference(resolve_source(str(folder)), device="cpu")
    return _LOADED[folder]


def prompt_ids(loaded: Loaded, length: int = 12) -> list[int]:
    """A deterministic prompt of `length` ids inside the model's vocabulary."""
    vocab = loaded.model.get_input_embeddings().num_embeddings
    return [(7 * i + 3) % vocab for i in range(length)]
