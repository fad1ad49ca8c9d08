"""Activations and causes: the residual stream's norms, massive activations and attention sinks; activation
patching; direct logit attribution; the logit lens followed for chosen tokens.

Each operation tokenizes its prompts, resolves a token string (`target`, `tokens`) to exactly one token id
(`internals.inference.tokens.single_token_id`: a `BadRequest` naming the tokens otherwise) and calls its
engine function with the context's `progress` and `check` (patching checks between batches of patched runs).
"""

from __future__ import annotations

from internals.worker.contract import (
    ActivationsRequest,
    ActivationsResult,
    AttributeRequest,
    AttributionResult,
    Done,
    LensTracksRequest,
    NoParams,
    PatchingResult,
    PatchRequest,
    TokenTracks,
)
from internals.worker.operations import OpContext, operation


def _token_id(ctx: OpContext, text: str | None, what: str = "target") -> int | None:
    from internals.inference.tokens import single_token_id

    return None if text is None else single_token_id(ctx.model.tokenizer, text, what)


@operation("activations", request=ActivationsRequest, result=ActivationsResult, needs_model=True,
           compute_lock=True, group="residual-activations")
def activations(ctx: OpContext, req: ActivationsRequest) -> ActivationsResult:
    """The residual stream's norm at every layer and position, its largest activations and each head's sink share."""
    from internals.inference.activations import residual_activations

    return residual_activations(ctx.model, ctx.tokens(req.prompt)["ids"], ratio=req.ratio, min_value=req.min_value,
                                progress=ctx.progress, check=ctx.check)


@operation("patch", request=PatchRequest, result=PatchingResult, needs_model=True, compute_lock=True, group="patch")
def patch(ctx: OpContext, req: PatchRequest) -> PatchingResult:
    """Activation patching: how much each clean activation restores the clean answer in the corrupted run."""
    from internals.inference.patching import GRIDS, activation_patching

    target = _token_id(ctx, req.target)
    return activation_patching(ctx.model, ctx.tokens(req.clean)["ids"], ctx.tokens(req.corrupt)["ids"],
                               target_id=target, grids=tuple(req.grids) if req.grids is not None else GRIDS,
                               batch_size=req.batch_size, progress=ctx.progress, check=ctx.check)


@operation("attribute", request=AttributeRequest, result=AttributionResult, needs_model=True, compute_lock=True,
           group="attribute")
def attribute(ctx: OpContext, req: AttributeRequest) -> AttributionResult:
    """Direct logit attribution: what the embedding, each attention block, head and MLP add to one logit."""
    from internals.inference.attribution import direct_logit_attribution

    return direct_logit_attribution(ctx.model, ctx.tokens(req.prompt)["ids"], target_id=_token_id(ctx, req.target),
                                    progress=ctx.progress, check=ctx.check)


@operation("lens_tracks", request=LensTracksRequest, result=TokenTracks, needs_model=True, compute_lock=True,
           group="lens-tracks")
def lens_tracks(ctx: OpContext, req: LensTracksRequest) -> TokenTracks:
    """The logit lens for chosen tokens: their rank and probability after every attention block and layer."""
    from internals.inference.lens import lens_token_tracks

    ids = [_token_id(ctx, text, "tracked token") for text in req.tokens]
    return lens_token_tracks(ctx.model, ctx.tokens(req.prompt)["ids"], ids, position=req.position)


@operation("cancel", request=NoParams, result=Done)
def cancel(ctx: OpContext, req: NoParams) -> Done:
    """Cancel this client's running request of the group this one is sent in (arriving is what cancels it)."""
    return {"done": True}
