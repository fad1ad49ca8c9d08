"""Diff operations: what fine-tuning, distillation or an adapter changed, for an explorer opened with `--base`.

The worker's `ModelService.diff_sides` (an `internals.diff.DiffSides`, set when the explorer runs
`llm-internals TUNED --base BASE`) holds both sides, opened lazily. Weight operations read the stored
tensors only (cached on disk by `internals.diff.cache`: a repeated request reads nothing); the behaviour diff
runs both models on a prompt. Names in requests are the explored model's tree names (its parameters).
"""

from __future__ import annotations

import glob

from internals.diff.types import BehaviourDiff, RankInfo, TensorDiff, WeightDiff
from internals.errors import UserError
from internals.worker.contract import DiffBehaviourRequest, DiffRankRequest, DiffSummaryRequest, DiffTensorRequest
from internals.worker.operations import OpContext, operation


def _sides(ctx: OpContext):
    sides = getattr(ctx.service, "diff_sides", None)
    if sides is None:
        raise UserError("no base model to compare with: open the explorer as `llm-internals MODEL --base BASE`")
    return sides


def _one(ctx: OpContext, name: str, bins: int, rank: bool) -> TensorDiff:
    from internals.diff import diff_weights

    sides = _sides(ctx)
    result = diff_weights(sides, pattern=glob.escape(name), bins=bins, rank=rank, check=ctx.check)
    for item in result["tensors"]:
        if item["name"] == name:
            return item
    raise UserError(f"{name} is not a tensor of both models (see `llm-internals diff BASE TUNED`)")


@operation("diff_tensor", request=DiffTensorRequest, result=TensorDiff, group="diff-tensor")
def diff_tensor(ctx: OpContext, req: DiffTensorRequest) -> TensorDiff:
    """The weight change of one tensor against the base: ‖ΔW‖, relative change, cosine, max |ΔW|, histogram."""
    return _one(ctx, req.name, req.bins, rank=False)


@operation("diff_summary", request=DiffSummaryRequest, result=WeightDiff, group="diff")
def diff_summary(ctx: OpContext, req: DiffSummaryRequest) -> WeightDiff:
    """Every tensor's change against the base and the totals by layer and component (`diff --json`)."""
    from internals.diff import diff_weights

    return diff_weights(_sides(ctx), bins=req.bins, progress=ctx.progress, check=ctx.check)


@operation("diff_rank", request=DiffRankRequest, result=RankInfo, group="diff-rank")
def diff_rank(ctx: OpContext, req: DiffRankRequest) -> RankInfo:
    """Singular values of one 2-D tensor's change, its stable and effective ranks (cached)."""
    info = _one(ctx, req.name, 64, rank=True)["rank"]
    if info is None:
        raise UserError(f"{req.name} is not a matrix: its change has no singular values")
    return info


@operation("diff_behaviour", request=DiffBehaviourRequest, result=BehaviourDiff, needs_model=True,
           compute_lock=True, group="diff-behaviour")
def diff_behaviour(ctx: OpContext, req: DiffBehaviourRequest) -> BehaviourDiff:
    """KL of the next-token distributions per position, the tokens that rose and fell, and the cosine of
    the two residual streams per layer and position. The explored model is loaded; the other side is
    loaded for the pass and dropped (an adapter is applied to the loaded base and removed again)."""
    from internals.diff.behaviour import diff_behaviour as run

    sides = _sides(ctx)
    loaded = ctx.model
    opts = ctx.service.options
    common = dict(top=req.top, device=opts.device, dtype=opts.dtype, max_memory=opts.max_memory,
                  trust_remote_code=ctx.opened.trust_remote_code, progress=ctx.progress, check=ctx.check)
    if sides.adapter is not None:  # the explored model is BASE
        return run(loaded, sides.adapter.folder, req.prompt, **common)
    return run(sides.base.source, loaded, req.prompt, **common)
