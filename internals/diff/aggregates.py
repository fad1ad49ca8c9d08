"""Exact group totals of a diff, by layer and by component (the groups `stats` uses).

Frobenius norms combine exactly: ‖group‖² = Σ ‖tensor‖², so a group's relative change is
sqrt(Σ‖ΔW‖²) / sqrt(Σ‖W‖²) from the per-tensor figures, without reading anything again.
"""

from __future__ import annotations

import math

from internals.aggregates import _ORDER
from internals.diff.types import DiffAggregates, GroupDiff, TensorDiff
from internals.structure import ModelStructure, classify, layer_of


def combine(items: list[TensorDiff]) -> GroupDiff | None:
    if not items:
        return None
    base = math.sqrt(math.fsum(t["base_norm"] ** 2 for t in items))
    delta = math.sqrt(math.fsum(t["delta_norm"] ** 2 for t in items))
    rel = delta / base if base > 0 else (0.0 if delta == 0 else None)
    return GroupDiff(tensors=len(items), base_norm=base, delta_norm=delta, rel_change=rel)


def aggregate(structure: ModelStructure, tensors: list[TensorDiff]) -> DiffAggregates:
    """Group tensor diffs (keyed by their matched names) by layer and by component kind."""
    by_layer: dict[int, list[TensorDiff]] = {}
    by_component: dict[str, list[TensorDiff]] = {}
    for t in tensors:
        info = structure.params.get(t["name"])
        component = info.component if info is not None else classify(t["name"])
        layer = info.layer if info is not None else layer_of(t["name"])
        by_component.setdefault(component, []).append(t)
        if layer is not None:
            by_layer.setdefault(layer, []).append(t)
    layers = max(structure.num_layers, max(by_layer, default=-1) + 1)
    order = sorted(by_component, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))
    return DiffAggregates(by_layer=[combine(by_layer.get(i, [])) for i in range(layers)],
                          by_component={c: combine(by_component[c]) for c in order})  # type: ignore[misc]
