"""Where the shipped demo model lives. Kept free of torch/transformers imports so it is cheap to import."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_DIRNAME = "demo_model"


def demo_model_path() -> Path:
    """The folder of the small Qwen2 model trained by `internals.demo_model_training.train`.

    It holds config.json, model.safetensors and the tokenizer files, so
    `AutoModelForCausalLM.from_pretrained(demo_model_path())` loads it.
    """
    try:
        from importlib.resources import files

        path = Path(str(files("internals") / DEMO_MODEL_DIRNAME))
    except (ImportError, ModuleNotFoundError, TypeError):  # pragma: no cover - very old importlib
        path = Path(__file__).resolve().parent / DEMO_MODEL_DIRNAME
    return path
