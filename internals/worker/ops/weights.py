"""Weight operations: answered by the lazy engine from the stored tensors, never loading the model.

Statistics, matrix previews and the cross-layer table are answered from `service.opened_for(...)`: while the
worker's background start still imports transformers, that is the model read from the file headers (no
torch), for every stored tensor; the summary and the tree are the exact ones (they wait for transformers).
"""

from __future__ import annotations

from typing import Any

from internals.worker.contract import (
    CrossLayer,
    MatrixPreview,
    MatrixPreviewRequest,
    ModelSummary,
    NoParams,
    TensorStats,
    TensorStatsRequest,
    TreeNode,
)
from internals.worker.operations import OpContext, operation

CROSS_LAYER_METRICS = ("std", "rms", "kurtosis", "abs_mean", "max_abs")  # + "rel_change" with a base open


@operation("summary", request=NoParams, result=ModelSummary)
def summary(ctx: OpContext, req: NoParams) -> ModelSummary:
    """Architecture facts and parameter counts (`summary --json`)."""
    return ctx.opened.summary()


@operation("tree", request=NoParams, result=list[TreeNode])
def tree(ctx: OpContext, req: NoParams) -> list[TreeNode]:
    """Every module and parameter, depth first; saved so the next explorer draws it before its worker is up."""
    nodes = ctx.opened.tree()
    service = ctx.service
    if not service.info_saved:
        from internals.info_cache import save_model_info

        save_model_info(ctx.opened.source, ctx.opened.summary(), nodes)
        service.info_saved = True
    return nodes


@operation("tensor_stats", request=TensorStatsRequest, result=TensorStats, group="tensor")
def tensor_stats(ctx: OpContext, req: TensorStatsRequest) -> TensorStats:
    """Exact statistics of one tensor; with clip, over its 1st..99th percentile range (from the kept pattern
    counts: a clip or a re-bin never reads the tensor again)."""
    with ctx.service.weight_question():
        return ctx.service.opened_for(req.name).tensor_stats(req.name, bins=req.bins, clip=req.clip)


@operation("matrix_preview", request=MatrixPreviewRequest, result=MatrixPreview, group="matrix")
def matrix_preview(ctx: OpContext, req: MatrixPreviewRequest) -> MatrixPreview:
    """A weight matrix reduced to at most rows×cols blocks: the mean |x| of each block (exact blocks), read
    from the memory map without torch."""
    from internals.matrix_preview import matrix_preview as preview
    from internals.weights import require_weights

    with ctx.service.weight_question():
        opened = ctx.service.opened_for(req.name)
        store = require_weights(opened.store, "a matrix preview")
        return preview(store, opened.stored_name_of(req.name), req.rows, req.cols, ctx.check, name=req.name)


@operation("cross_layer", request=NoParams, result=CrossLayer, group="cross-layer")
def cross_layer(ctx: OpContext, req: NoParams) -> CrossLayer:
    """Per component kind (q, k, v, o, gate, up, down, ...) and layer: std, RMS, kurtosis... of the weights."""
    with ctx.service.weight_question():
        return _cross_layer(ctx)


def _cross_layer(ctx: OpContext) -> CrossLayer:
    from internals.aggregates import aggregate
    from internals.structure import LAYER_COMPONENTS

    opened = ctx.service.opened_for(None)
    # Weights only; a parameter fused at load time (MoE experts) counts as the group of its stored tensors.
    params = [p for p in opened.structure.unique_params
              if p.layer is not None and p.component in LAYER_COMPONENTS and p.stored and not p.name.endswith("bias")]
    num_layers = opened.summary()["num_layers"] or 0
    stored = [name for p in params for name in p.stored]
    stats = []
    # the whole-model pass (one counting schedule over groups of tensors), cancellable between tensors
    for item in opened.iter_stats(stored, bins=64, progress=lambda done, total, name: ctx.progress(
            done / max(1, total), name)):
        ctx.check()
        stats.append(item)
    cells = aggregate(opened.structure, stats, num_layers)["by_component_and_layer"]
    comps = [c for c in LAYER_COMPONENTS if c in cells]
    names: dict[str, list[str | None]] = {c: [None] * num_layers for c in comps}
    for p in params:
        if names[p.component][p.layer] is None:
            names[p.component][p.layer] = p.name
    metrics: dict[str, dict[str, list]] = {m: {} for m in CROSS_LAYER_METRICS}
    for c in comps:
        for m in CROSS_LAYER_METRICS:
            metrics[m][c] = [_metric(cell, m) for cell in cells[c]]
    sides = getattr(ctx.service, "diff_sides", None)
    if sides is not None:  # `--base`: each weight's relative change against the base (the diff cache answers)
        from internals.diff import diff_weights

        rel = {t["name"]: t["rel_change"] for t in diff_weights(sides, check=ctx.check)["tensors"]}
        metrics["rel_change"] = {c: [None if n is None else rel.get(n) for n in names[c]] for c in comps}
    return {"num_layers": num_layers, "components": comps, "metrics": metrics, "names": names}


def _metric(cell: dict[str, Any] | None, metric: str) -> float | None:
    if cell is None:
        return None
    if metric == "max_abs":
        return None if cell["min"] is None else max(abs(cell["min"]), abs(cell["max"]))
    return cell.get(metric)
