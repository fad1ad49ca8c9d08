"""Statistics of groups of tensors: per layer, per component kind (q, k, v, o, gate, up, down, norm,
embedding, lm_head, ...) across all layers, and per (component, layer): what the cross-layer views draw.

Groups are combined exactly from the per-tensor statistics (counts, sums, sums of squares, extremes), so
no tensor is read twice. Kurtosis is not combined (it would need third moments); per-tensor kurtosis stays
available, and a group of a single tensor (most (component, layer) cells) carries it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from internals.structure import ModelStructure


def combine(stats: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Exact numel, mean, std, RMS, mean |x|, min, max, zeros, NaN, Inf of the union of several tensors."""
    items = [s for s in stats if s and s.get("numel")]
    if not items:
        return None
    finite = [(s["numel"] - s["nan"] - s["inf"], s) for s in items]
    n = sum(k for k, _ in finite)
    out: dict[str, Any] = {
        "tensors": len(items), "numel": sum(s["numel"] for s in items),
        "zeros": sum(s["zeros"] for s in items), "nan": sum(s["nan"] for s in items), "inf": sum(s["inf"] for s in items),
        "mean": None, "std": None, "rms": None, "abs_mean": None, "min": None, "max": None,
    }
    if len(items) == 1:  # one tensor: its own kurtosis is exact
        out["kurtosis"] = items[0].get("kurtosis")
    if n == 0:
        return out
    total = sum(k * s["mean"] for k, s in finite if k)
    squares = sum(k * s["rms"] ** 2 for k, s in finite if k)
    mean = total / n
    out["mean"] = mean
    out["rms"] = math.sqrt(squares / n)
    out["std"] = math.sqrt(max(0.0, squares / n - mean * mean))
    out["abs_mean"] = sum(k * s["abs_mean"] for k, s in finite if k) / n
    out["min"] = min(s["min"] for k, s in finite if k)
    out["max"] = max(s["max"] for k, s in finite if k)
    return out


def aggregate(structure: ModelStructure, stats: list[dict[str, Any]], num_layers: int | None = None) -> dict[str, Any]:
    """Group per-tensor statistics (keyed by stored name) by layer, by component and by both."""
    owner: dict[str, tuple[str, int | None]] = {}
    for p in structure.params.values():
        if p.tied_to is None:
            for stored in p.stored:
                owner[stored] = (p.component, p.layer)
    layers = num_layers if num_layers is not None else structure.num_layers
    by_layer: dict[int, list[dict]] = {}
    by_component: dict[str, list[dict]] = {}
    cells: dict[tuple[str, int], list[dict]] = {}
    for s in stats:
        component, layer = owner.get(s["name"], ("other", None))
        by_component.setdefault(component, []).append(s)
        if layer is not None:
            by_layer.setdefault(layer, []).append(s)
            cells.setdefault((component, layer), []).append(s)
    components = sorted(by_component, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))
    return {
        "by_layer": [combine(by_layer.get(i, [])) for i in range(layers)],
        "by_component": {c: combine(by_component[c]) for c in components},
        "by_component_and_layer": {
            c: [combine(cells.get((c, i), [])) for i in range(layers)] for c in components
            if any((c, i) in cells for i in range(layers))
        },
    }


_ORDER = (
    "embedding",
    "q",
    "k",
    "v",
    "o",
    "qkv",
    "gate",
    "up",
    "down",
    "gate_up",
    "experts",
    "router",
    "norm",
    "lm_head",
    "other",
)
