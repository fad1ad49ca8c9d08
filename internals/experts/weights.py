"""Exact statistics of a fused expert parameter, over all the stored tensors it is built from, and per expert.

In transformers 5 the experts of Mixtral-style models are one 3-D parameter (`mlp.experts.gate_up_proj`
[experts, 2 x intermediate, hidden], `mlp.experts.down_proj`) fused at load time from many stored tensors
(`block_sparse_moe.experts.3.w1.weight`, ...). The tree records those stored names (`ParamInfo.stored`).
Statistics of the union are exact: for 8/16-bit dtypes the counts of every bit pattern of each stored tensor
add up (`PatternCounts.__add__`) to those of the union; wider dtypes are read as one buffer of all the stored
tensors' bytes (the size of the fused parameter itself), so the same engine sees exactly the concatenation.
The router (gate) weight summary gives each expert's router-row norm and the cosine similarity of the rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from internals.errors import UserError
from internals.experts.types import ExpertStats, FusedStats, RouterSummary
from internals.stats import PatternCounts, compute_tensor_stats, count_patterns, dtype_info
from internals.weights import require_weights

Progress = Callable[[float, str], None]
Check = Callable[[], None]

_EXPERT_INDEX = re.compile(r"(?:^|\.)experts\.(\d+)\.")


def _param(opened, name: str):
    info = opened.structure.params.get(name)
    if info is None:
        raise UserError(f"no parameter named {name!r}: the tree lists the model's parameters")
    if info.tied_to is not None:
        info = opened.structure.params[info.tied_to]
    return info


def expert_parameters(opened) -> list[str]:
    """Parameters built at load time from several stored tensors of numbered experts (the fused experts)."""
    return [p.name for p in opened.structure.params.values()
            if p.tied_to is None and len(p.stored) > 1 and all(_EXPERT_INDEX.search(s) for s in p.stored)]


def router_parameters(opened) -> list[str]:
    """The router (gate) weight of every MoE layer, by the component kind the structure gives it."""
    return [p.name for p in opened.structure.params.values()
            if p.tied_to is None and p.component == "router" and len(p.shape) == 2]


def _by_expert(stored: list[str]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for name in stored:
        match = _EXPERT_INDEX.search(name)
        if match:
            groups.setdefault(int(match.group(1)), []).append(name)
    return dict(sorted(groups.items()))


def _stats_of(store, names: list[str], code: str, bins: int, counts: dict[str, PatternCounts] | None):
    """TensorStats of the concatenation of `names` (all of dtype `code`)."""
    if counts is not None:
        total = counts[names[0]]
        for n in names[1:]:
            total = total + counts[n]
        return total.stats(bins)
    raw = np.concatenate([np.asarray(store.raw(n)).reshape(-1) for n in names])
    numel = raw.size // dtype_info(code).itemsize
    return compute_tensor_stats(raw, code, (numel,), bins)


def fused_parameter_stats(opened, param_name: str, bins: int = 64, progress: Progress | None = None,
                          check: Check | None = None) -> FusedStats:
    """Exact statistics and histogram of a parameter fused from several stored tensors, plus per-expert stats.

    opened: an `internals.model.OpenedModel` with weights. The result has the keys of tensor statistics
    (name and shape are the fused parameter's) plus "stored" (its stored tensors) and "experts" (norm, std,
    kurtosis, ... of each expert's slice; empty when the stored names are not numbered experts).
    """
    report = progress or (lambda fraction, message: None)
    store = require_weights(opened.store, "expert statistics")
    info = _param(opened, param_name)
    if len(info.stored) < 2:
        raise UserError(f"{param_name} is stored as one tensor, not fused from several: ask for its tensor statistics")
    codes = {store.entry(n).dtype for n in info.stored}
    if len(codes) != 1:
        raise UserError(f"the stored tensors of {param_name} mix dtypes ({', '.join(sorted(codes))}): "
                        "ask for their statistics one by one")
    code = codes.pop()
    counts: dict[str, PatternCounts] | None = None
    if dtype_info(code).pattern_bits:
        counts = {}
        for i, n in enumerate(info.stored):
            if check is not None:
                check()
            entry = store.entry(n)
            counts[n] = count_patterns(store.raw(n), code, tuple(entry.shape), n)
            report(0.9 * (i + 1) / len(info.stored), f"counted {n}")
    elif check is not None:
        check()
    whole = _stats_of(store, list(info.stored), code, bins, counts).to_dict()
    experts: list[ExpertStats] = []
    for expert, names in _by_expert(list(info.stored)).items():
        if check is not None:
            check()
        s = _stats_of(store, names, code, bins, counts)
        experts.append(ExpertStats(expert=expert, stored=names, numel=int(s.numel), mean=_float(s.mean),
                                   std=_float(s.std), rms=_float(s.rms), l2_norm=_float(s.l2_norm),
                                   kurtosis=_float(s.kurtosis), min=_float(s.min), max=_float(s.max)))
    report(1.0, "done")
    whole.update(name=param_name, shape=[int(x) for x in info.shape], stored=list(info.stored), experts=experts)
    return FusedStats(**whole)  # type: ignore[typeddict-item]


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def router_summary(opened, param_name: str) -> RouterSummary:
    """Per expert the L2 norm of its router row, and the cosine similarity matrix of the rows (float64)."""
    store = require_weights(opened.store, "router statistics")
    info = _param(opened, param_name)
    if len(info.shape) != 2:
        raise UserError(f"{param_name} is not a router weight matrix [experts, hidden] (shape {list(info.shape)})")
    if len(info.stored) != 1:
        raise UserError(f"{param_name} is built from {len(info.stored)} stored tensors: not a router weight")
    weight = store.tensor(info.stored[0]).double().numpy().reshape(info.shape)
    norms = np.linalg.norm(weight, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    unit = weight / safe[:, None]
    cosine = unit @ unit.T
    return RouterSummary(name=param_name, layer=info.layer, num_experts=int(weight.shape[0]),
                         row_norms=[float(x) for x in norms], cosine=[[float(x) for x in row] for row in cosine])
