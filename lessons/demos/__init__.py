"""Runnable lesson demos (pre-training, before/after, LoRA, DPO, GRPO, distillation), run by the model worker.

Importing this package does not import torch: the registry is plain data, and each demo's module (which uses
torch, transformers and, for some, peft or trl) is imported by `run_demo` when that demo runs.
"""

from lessons.demos.registry import (
    DEMOS,
    TRAIN_EXTRA_HINT,
    DemoInfo,
    MissingExtraError,
    demo_params,
    run_demo,
)

__all__ = ["DEMOS", "TRAIN_EXTRA_HINT", "DemoInfo", "MissingExtraError", "demo_params", "run_demo"]
