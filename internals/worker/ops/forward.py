"""Forward-pass operations: each runs the loaded model on a prompt under the compute lock.

The dispatcher (internals/worker/operations.py) loads the model, takes the lock, checks cancellation and
translates out-of-memory errors; an operation here only tokenizes and calls its engine function.
"""

from __future__ import annotations

import numpy as np

from internals.worker.contract import (
    ActivationStats,
    Attention,
    AttentionRequest,
    GenerateRequest,
    GeneratedToken,
    GenerationDone,
    Lens,
    LensRequest,
    Neighbours,
    NeighboursRequest,
    NextTokens,
    NextTokensRequest,
    PromptRequest,
    ResidualNorms,
    Tokens,
    TokenizeRequest,
)
from internals.worker.operations import OpContext, operation


@operation("tokenize", request=TokenizeRequest, result=Tokens, needs_model=True, group="tokens")
def tokenize(ctx: OpContext, req: TokenizeRequest) -> Tokens:
    """The prompt's tokens: ids, pieces, readable labels, offsets."""
    return ctx.tokens(req.text)


@operation("attention", request=AttentionRequest, result=Attention, needs_model=True, compute_lock=True,
           group="attention")
def attention(ctx: OpContext, req: AttentionRequest) -> Attention:
    """One layer's attention weights on a prompt (block-averaged to bins×bins when bins is given)."""
    from internals.inference.attention import attention_for_layer

    toks = ctx.tokens(req.prompt)
    result = attention_for_layer(ctx.model, toks["ids"], req.layer, bins=req.bins)
    result.update({"tokens": toks["labels"], "token_ids": toks["ids"], "sink_share": sink_shares(result)})
    return result


def sink_shares(result: dict) -> list[float] | None:
    """Each head's mean attention weight on key 0 over the query positions >= 1 (the attention sink), from
    exact maps; None when they are binned or the prompt is one token."""
    weights = result["weights"]
    if result["bin_edges"] is not None or weights.shape[1] < 2:
        return None
    return [float(v) for v in weights[:, 1:, 0].astype(np.float64).mean(axis=1)]


@operation("lens", request=LensRequest, result=Lens, needs_model=True, compute_lock=True, group="lens")
def lens(ctx: OpContext, req: LensRequest) -> Lens:
    """Logit lens: the top next tokens every layer's residual stream predicts, at every position."""
    from internals.inference.lens import logit_lens

    toks = ctx.tokens(req.prompt)
    result = logit_lens(ctx.model, toks["ids"], req.top_k)
    for entry in result["layers"]:
        entry["top_tokens"] = entry.pop("top_labels")
    result.update({"tokens": toks["labels"], "token_ids": toks["ids"]})
    return result


@operation("residual_norms", request=PromptRequest, result=ResidualNorms, needs_model=True, compute_lock=True,
           group="residual")
def residual_norms(ctx: OpContext, req: PromptRequest) -> ResidualNorms:
    """The L2 norm of the residual stream at every layer and position."""
    from internals.inference.lens import residual_norms as norms_of

    toks = ctx.tokens(req.prompt)
    norms = norms_of(ctx.model, toks["ids"])
    return {"tokens": toks["pieces"], "token_ids": toks["ids"], "norms": np.asarray(norms, dtype=np.float32)}


@operation("activation_stats", request=PromptRequest, result=ActivationStats, needs_model=True, compute_lock=True,
           group="activations")
def activation_stats(ctx: OpContext, req: PromptRequest) -> ActivationStats:
    """Statistics of every Linear, norm, attention and MLP module's output on a prompt."""
    from internals.inference.lens import activation_stats as stats_of

    toks = ctx.tokens(req.prompt)
    return {"tokens": toks["pieces"], "modules": stats_of(ctx.model, toks["ids"])}


@operation("next_tokens", request=NextTokensRequest, result=NextTokens, needs_model=True, compute_lock=True,
           group="next")
def next_tokens(ctx: OpContext, req: NextTokensRequest) -> NextTokens:
    """The k most likely next tokens after the prompt."""
    from internals.inference.generation import next_token_topk

    return next_token_topk(ctx.model, ctx.tokens(req.prompt)["ids"], req.k)


@operation("generate", request=GenerateRequest, result=GenerationDone, needs_model=True, compute_lock="step",
           group="generate", streams=True, item=GeneratedToken)
def generate(ctx: OpContext, req: GenerateRequest) -> GenerationDone:
    """Continue the prompt, streaming one item per token (greedy at temperature 0).

    The compute lock is taken per token (each `next` of the stream is one forward pass), and the token is
    sent outside it: another client's request waits for one token, not for the whole generation."""
    from internals.inference.generation import generate_stream

    count = 0
    stream = generate_stream(ctx.model, ctx.tokens(req.prompt)["ids"], req.max_new_tokens,
                             temperature=req.temperature, seed=req.seed, should_stop=lambda: ctx.cancelled)
    while True:
        with ctx.step():
            item = next(stream, None)
        if item is None:
            break
        ctx.emit(item)
        count += 1
    return {"generated": count}


@operation("neighbours", request=NeighboursRequest, result=Neighbours, needs_model=True, compute_lock=True,
           group="neighbours")
def neighbours(ctx: OpContext, req: NeighboursRequest) -> Neighbours:
    """The k tokens whose input embeddings are closest by cosine."""
    from internals.inference.neighbours import embedding_neighbours

    return embedding_neighbours(ctx.model, req.token_id, req.k)
