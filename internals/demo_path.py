"""Where the shipped demo models live. Kept free of torch/transformers imports so it is cheap to import."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_DIRNAME = "demo_model"
# `--demo KIND` on the command line: the dense Qwen2 (the default model) or the Mixtral-style MoE.
DEMO_DIRNAMES = {"dense": DEMO_MODEL_DIRNAME, "moe": "demo_moe"}
DEMO_TRAINERS = {"dense": "internals.demo_model_training.train", "moe": "internals.demo_model_training.train_moe"}


def demo_path(kind: str = "dense") -> Path:
    """The folder of a shipped demo model: "dense" (3-layer Qwen2) or "moe" (3-layer Mixtral, 4 experts, top-2).

    Each holds config.json, model.safetensors and the tokenizer files, so
    `AutoModelForCausalLM.from_pretrained(demo_path(kind))` loads it.
    """
    if kind not in DEMO_DIRNAMES:
        raise ValueError(f"no demo model {kind!r}: choose one of {', '.join(DEMO_DIRNAMES)}")
    dirname = DEMO_DIRNAMES[kind]
    try:
        from importlib.resources import files

        path = Path(str(files("internals") / dirname))
    except (ImportError, ModuleNotFoundError, TypeError):  # pragma: no cover - very old importlib
        path = Path(__file__).resolve().parent / dirname
    return path


def demo_model_path() -> Path:
    """The folder of the small Qwen2 model trained by `internals.demo_model_training.train` (the default MODEL)."""
    return demo_path("dense")
