"""Compare two models: what fine-tuning, distillation or a LoRA adapter changed.

- `open_sides(BASE, TUNED)` -> `DiffSides` (TUNED may be a PEFT LoRA adapter folder);
  `diff_weights(sides, pattern=, bins=, rank=, progress=, check=)` -> `WeightDiff` (the `diff --json` object).
- `diff_behaviour(base, tuned, prompt, ...)` -> `BehaviourDiff`: KL per position, the tokens that rose and fell,
  the cosine of the two residual streams per layer and position (imported lazily: it needs transformers).

Modules: `types` (the result TypedDicts, torch-free), `matching` (which tensor goes with which), `adapter` (LoRA factors), `weights` (streamed exact
figures), `rank` (singular values), `aggregates` (by layer and component), `cache`, `behaviour`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DiffSides", "WeightDiff", "diff_weights", "open_compared", "open_sides"]


def __getattr__(name: str) -> Any:
    """The engine on first use: `internals.diff.types` stays importable without torch (the explorer's side)."""
    if name in __all__:
        from internals.diff import engine

        return getattr(engine, name)
    raise AttributeError(name)
