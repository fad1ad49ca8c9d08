"""One forward pass with hooks on the parts that write into the residual stream, keeping what they wrote.

Activation patching and direct logit attribution both start from a clean run's pieces: the embedding (the
input of layer 0, so GPT-2's position embeddings and Gemma's embedding scale are included), each decoder
layer's output, what each attention block and each MLP adds to the residual stream (`attention_writer`,
`mlp_writer`) and the heads' outputs side by side at the input of the attention's output projection. The
hooks sit on the real transformers modules; nothing of the architecture is re-implemented here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from internals.inference.model_parts import (
    attention_module,
    attention_writer,
    decoder_layers,
    hook_hidden_states,
    lm_head,
    mlp_writer,
    out_projection,
    output_tensor,
    text_config,
)

PARTS = ("embedding", "residual", "attention", "mlp", "heads")


@dataclass
class Captured:
    """Batch row 0 of one run: tensors [T, hidden] (heads: [T, heads * head_dim]) per layer, for the parts asked."""

    embedding: torch.Tensor | None = None
    residual: list[torch.Tensor] = field(default_factory=list)  # decoder layer outputs
    attention: list[torch.Tensor] = field(default_factory=list)  # what each attention block adds
    mlp: list[torch.Tensor] = field(default_factory=list)  # what each MLP adds
    heads: list[torch.Tensor] = field(default_factory=list)  # input of each attention's output projection
    last_logits: torch.Tensor | None = None  # [vocab] float32 at the last position

    def got(self, part: Literal["embedding", "last_logits"]) -> torch.Tensor:
        """`embedding` or `last_logits` of a run that captured it (`capture` always keeps the last logits)."""
        value = self.embedding if part == "embedding" else self.last_logits
        if value is None:
            raise RuntimeError(f"this run did not capture {part}")
        return value


@contextmanager
def hooks(handles: list) -> Iterator[None]:
    """Remove the given hook handles on exit, however the block ends."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def part_modules(model: nn.Module, part: str) -> list[nn.Module]:
    """The module of each layer whose output (residual, attention, mlp) or input (heads) is `part`."""
    layers = decoder_layers(model)
    if part == "residual":
        return list(layers)
    if part == "attention":
        return [attention_writer(block) for block in layers]
    if part == "mlp":
        return [mlp_writer(block) for block in layers]
    if part == "heads":
        return [out_projection(attention_module(block)) for block in layers]
    raise ValueError(f"unknown part {part!r}")


def last_position_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits [batch, vocab] (float32) at the last position: the decoder, then the LM head on that position only
    (the [T, vocab] logits of the other positions are never computed), then any final soft-capping."""
    hidden = getattr(model, "base_model", model)(input_ids=ids, use_cache=False)[0]
    logits = lm_head(model)(hidden[:, -1]).float()
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def capture(model: nn.Module, ids: torch.Tensor, parts: tuple[str, ...] = PARTS) -> Captured:
    """Run the model on ids [1, T] (no grad) and keep the asked parts of batch row 0, plus the last logits."""
    out = Captured()
    handles = []
    if "embedding" in parts:
        def keep_embedding(module: nn.Module, args: tuple, kwargs: dict) -> None:
            out.embedding = hook_hidden_states(args, kwargs)[0].detach().clone()
        handles.append(decoder_layers(model)[0].register_forward_pre_hook(keep_embedding, with_kwargs=True))
    for part in ("residual", "attention", "mlp"):
        if part in parts:
            kept: list = getattr(out, part)
            for module in part_modules(model, part):
                handles.append(module.register_forward_hook(_keep_output(kept)))
    if "heads" in parts:
        for module in part_modules(model, "heads"):
            handles.append(module.register_forward_pre_hook(_keep_input(out.heads)))
    with hooks(handles), torch.no_grad():
        out.last_logits = last_position_logits(model, ids)[0]
    count = len(decoder_layers(model))
    for part in ("residual", "attention", "mlp", "heads"):
        if part in parts and len(getattr(out, part)) != count:
            raise RuntimeError(f"expected {count} captures of {part}, got {len(getattr(out, part))}: a module ran "
                               "more or less than once per layer")
    return out


def _keep_output(kept: list):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        kept.append(output_tensor(output)[0].detach().clone())
    return hook


def _keep_input(kept: list):
    def hook(module: nn.Module, args: tuple) -> None:
        kept.append(args[0][0].detach().clone())
    return hook
