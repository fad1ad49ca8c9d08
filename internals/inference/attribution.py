"""Direct logit attribution: how much each part that writes into the residual stream adds to one logit.

The residual stream at the last position is a sum: the embedding (the input of layer 0: token embeddings
plus GPT-2's position embeddings, Gemma's scale included) plus what every attention block and every MLP
adds. The logit of the target is lm_head(final_norm(that sum)). With the final norm's scale frozen at the
clean run's value (`norm_probe`), the norm is linear, so the logit splits into one term per part, plus a
bias term (the final norm's bias through the LM head, plus the LM head's own bias); the terms add up to
the logit exactly (up to rounding; checked). An attention block's term splits further into its heads:
each head's slice of the output projection's input times that slice of its weight (the projection's bias
stays with the block, not with any head). Where a block normalises its attention output before adding it
(Gemma 2's post-attention norm), the heads go through that norm with its scale frozen as well.

With final logit soft-capping (Gemma 2) the attributed logit is the one before the cap; models that scale
the logits after the LM head (Cohere's logit_scale, Granite's logits_scaling) get the unscaled logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from internals.errors import UserError
from internals.inference.capture import capture
from internals.inference.errors import translate_oom
from internals.inference.model_parts import (
    attention_module,
    attention_writer,
    decoder_layers,
    final_norm,
    lm_head,
    num_heads,
    out_projection,
    projection_weight,
    prompt_tensor,
    vocab_size,
)
from internals.inference.norm_probe import FrozenNorm, freeze_norm, identity_norm
from internals.inference.patching import label
from internals.inference.result_types import AttributionResult

Progress = Callable[[float, str], None]
Check = Callable[[], None]


def direct_logit_attribution(loaded: Any, prompt_ids: Sequence[int], target_id: int | None = None,
                             progress: Progress | None = None, check: Check | None = None) -> AttributionResult:
    """The contributions to the target's logit at the last position (target: the model's top token unless given)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = prompt_tensor(model, prompt_ids)
    if target_id is not None and not 0 <= int(target_id) < vocab_size(model):
        raise UserError(f"target token id {target_id} is outside the vocabulary of {vocab_size(model)}")
    report = progress or (lambda fraction, message: None)
    report(0.0, "forward pass")
    with translate_oom(), torch.no_grad():
        run = capture(model, ids, ("embedding", "residual", "attention", "mlp", "heads"))
        if check is not None:
            check()
        target = int(run.last_logits.argmax()) if target_id is None else int(target_id)
        final = run.residual[-1][-1]
        norm_module = final_norm(model)
        norm = freeze_norm(norm_module, final) if norm_module is not None else identity_norm(final.numel(), final.device)
        head = lm_head(model)
        direction = head.weight[target].double()
        head_bias = float(head.bias[target]) if getattr(head, "bias", None) is not None else 0.0
        normed = norm_module(final[None]) if norm_module is not None else final[None]
        logit = float(head(normed)[0, target])

        def term(part: torch.Tensor) -> float:
            return float(norm.linear(part) @ direction)

        embedding = term(run.embedding[-1])
        attention = [term(a[-1]) for a in run.attention]
        mlp = [term(m[-1]) for m in run.mlp]
        heads = [head_terms(model, layer, run.heads[layer][-1], norm, direction) for layer in range(len(attention))]
        bias = float(norm.bias @ direction) + head_bias
        _check_sum(run, final)
    report(1.0, "done")
    return AttributionResult(tokens=[label(tokenizer, i) for i in prompt_ids], target=label(tokenizer, target),
                             target_id=target, logit=logit, bias=bias, embedding=embedding, attention=attention,
                             heads=heads, mlp=mlp)


def head_outputs(model: Any, layer: int, heads_input: torch.Tensor) -> torch.Tensor:
    """Each head's share of the attention's output projection for one position: float64 [heads, hidden], from
    the projection's input [heads * head_dim]; their sum plus the projection's bias is the projection's output."""
    projection = out_projection(attention_module(decoder_layers(model)[layer]))
    weight = projection_weight(projection).double()  # [hidden, heads * head_dim]
    count = num_heads(model)
    width = int(heads_input.numel()) // count
    z = heads_input.double().reshape(count, width)
    return torch.einsum("hd,ohd->ho", z, weight.reshape(weight.shape[0], count, width))


def head_terms(model: Any, layer: int, heads_input: torch.Tensor, norm: FrozenNorm,
               direction: torch.Tensor) -> list[float]:
    outputs = head_outputs(model, layer, heads_input)
    block = decoder_layers(model)[layer]
    writer = attention_writer(block)
    if writer is not attention_module(block):  # a post-attention norm: freeze it at its clean input
        projection = out_projection(attention_module(block))
        bias = projection.bias.double() if getattr(projection, "bias", None) is not None else 0.0
        post = freeze_norm(writer, (outputs.sum(0) + bias).to(heads_input.dtype))
        outputs = post.linear(outputs)
    return [float(v) for v in norm.linear(outputs) @ direction]


def _check_sum(run: Any, final: torch.Tensor) -> None:
    """The parts must add up to the residual stream, else the architecture has paths this does not know."""
    total = run.embedding[-1].double() + sum(a[-1].double() for a in run.attention) + sum(m[-1].double() for m in run.mlp)
    error = float((total - final.double()).abs().max())
    scale = float(final.double().abs().max())
    if error > 1e-3 * max(1.0, scale):
        raise UserError(f"this architecture's residual stream is not the embedding plus its attention and MLP "
                        f"outputs (off by {error:.3g}): direct logit attribution does not support it")
