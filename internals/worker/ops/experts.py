"""Mixture-of-experts operations: statistics of fused expert weights, router summaries, routing on a prompt.

`expert_stats`, `expert_spectra` and `router_summary` read the stored tensors (no model load); `experts` runs
the loaded model and reads each MoE layer's own router (internals/inference/routing.py).
"""

from __future__ import annotations

from internals.worker.contract import (
    ExpertSpectra,
    ExpertSpectraRequest,
    ExpertStatsRequest,
    FusedStats,
    PromptRequest,
    RouterSummary,
    RouterSummaryRequest,
    Routing,
)
from internals.worker.operations import OpContext, operation


@operation("expert_stats", request=ExpertStatsRequest, result=FusedStats, group="tensor")
def expert_stats(ctx: OpContext, req: ExpertStatsRequest) -> FusedStats:
    """Exact statistics and histogram of a parameter fused from stored expert tensors, and per expert."""
    from internals.experts.weights import fused_parameter_stats

    return fused_parameter_stats(ctx.opened, req.name, bins=req.bins, progress=ctx.progress, check=ctx.check)


@operation("expert_spectra", request=ExpertSpectraRequest, result=ExpertSpectra, group="expert_spectra")
def expert_spectra(ctx: OpContext, req: ExpertSpectraRequest) -> ExpertSpectra:
    """Each expert's spectrum of a stacked expert parameter, in brief (α, D, stable rank, spikes), with progress
    per expert and cancellation; cached on disk like every spectrum."""
    from internals.experts.spectra import expert_spectra as spectra_of_experts

    return spectra_of_experts(ctx.opened, req.name, progress=ctx.progress, check=ctx.check)


@operation("router_summary", request=RouterSummaryRequest, result=RouterSummary, group="router")
def router_summary(ctx: OpContext, req: RouterSummaryRequest) -> RouterSummary:
    """Per expert the L2 norm of its router row, and the cosine similarity between the rows."""
    from internals.experts.weights import router_summary as summarise

    return summarise(ctx.opened, req.name)


@operation("experts", request=PromptRequest, result=Routing, needs_model=True, compute_lock=True, group="experts")
def experts(ctx: OpContext, req: PromptRequest) -> Routing:
    """For every MoE layer and token: the experts the router chose, their weights, and each expert's load."""
    from internals.inference.routing import expert_routing

    return expert_routing(ctx.model, ctx.tokens(req.prompt)["ids"], progress=ctx.progress, check=ctx.check)
