"""The module tree as plain dicts (docs/contracts.md, "Tree nodes"): what the explorer's sidebar draws."""

from __future__ import annotations

from typing import Any

from internals.structure import ModelStructure, classify, layer_of
from internals.weights import WeightStore


def tree_nodes(structure: ModelStructure, store: WeightStore | None) -> list[dict[str, Any]]:
    """Modules and parameters in depth-first order; module `numel` is its subtree's unique parameter count."""
    children: dict[str, list[str]] = {}
    for m in structure.modules:
        if m.parent is not None:
            children.setdefault(m.parent, []).append(m.name)
    params_of: dict[str, list[str]] = {}
    for p in structure.params.values():
        owner = p.name.rsplit(".", 1)[0] if "." in p.name else ""
        params_of.setdefault(owner, []).append(p.name)
    classes = {m.name: m.cls for m in structure.modules}
    subtotal: dict[str, int] = {}

    def total(name: str) -> int:
        if name not in subtotal:
            own = sum(structure.params[p].numel for p in params_of.get(name, []) if structure.params[p].tied_to is None)
            subtotal[name] = own + sum(total(c) for c in children.get(name, []))
        return subtotal[name]

    nodes: list[dict[str, Any]] = []

    def visit(name: str, parent: str | None) -> None:
        nodes.append({
            "name": name, "parent": parent, "kind": "module", "class": classes.get(name, "?"),
            "shape": None, "numel": total(name), "dtype": None,
            "component": classify(name) if name else None, "layer": layer_of(name), "tied_to": None,
        })
        for pname in params_of.get(name, []):
            p = structure.params[pname]
            entry = store.entries.get(p.direct) if (store is not None and p.direct) else None
            if entry is None and store is not None and p.tied_to is not None:
                target = structure.params[p.tied_to]
                entry = store.entries.get(target.direct) if target.direct else None
            nodes.append({
                "name": pname, "parent": name, "kind": "parameter", "class": None, "shape": list(p.shape),
                "numel": p.numel, "dtype": entry.dtype_name if entry else None, "component": p.component,
                "layer": p.layer, "tied_to": p.tied_to, "stored": list(p.stored), "converted": p.converted,
                # shape and dtype of each stored tensor (the explorer draws fused experts in their stored layout)
                "stored_shapes": [_stored_shape(store, s) for s in p.stored],
                "stored_dtypes": [_stored_dtype(store, s) for s in p.stored],
            })
        for child in children.get(name, []):
            visit(child, name)

    visit("", None)
    return nodes


def _stored_shape(store: WeightStore | None, name: str) -> list[int] | None:
    entry = store.entries.get(name) if store is not None else None
    return list(entry.shape) if entry is not None else None


def _stored_dtype(store: WeightStore | None, name: str) -> str | None:
    entry = store.entries.get(name) if store is not None else None
    return entry.dtype_name if entry is not None else None
