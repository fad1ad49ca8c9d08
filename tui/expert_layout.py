"""The two layouts of a mixture-of-experts model's experts in the tree: in memory (fused) and as stored.

transformers 5 fuses the numbered experts of Mixtral-style checkpoints (`block_sparse_moe.experts.3.w1.weight`,
...) into one 3-D parameter per projection at load time (`mlp.experts.gate_up_proj`); the exact tree lists the
fused parameters, each with the stored tensors it is built from (`stored`, `stored_shapes`). `stored_layout`
turns each fused parameter back into its stored tensors (a module per expert, a leaf per tensor), so the user
can see and open either. The provisional tree read from the file headers is already the stored layout.
Torch-free and pure: the app decides which list the tree draws.
"""

from __future__ import annotations

import math
import re
from typing import Any

_EXPERT = re.compile(r"^(?P<expert>.*\.experts\.(?P<index>\d+))\.(?P<rest>.+)$")

FUSED, STORED = "fused", "stored"


def is_fused_experts(node: dict[str, Any]) -> bool:
    """A parameter fused at load time from several stored tensors of numbered experts."""
    stored = node.get("stored") or []
    return node.get("kind") == "parameter" and len(stored) > 1 and all(_EXPERT.match(s) for s in stored)


def expert_layout_of(nodes: list[dict[str, Any]]) -> str | None:
    """Which layout `nodes` show: FUSED, STORED (numbered expert tensors, e.g. the provisional tree) or None
    (no experts)."""
    if any(is_fused_experts(n) for n in nodes):
        return FUSED
    if any(n.get("kind") == "parameter" and _EXPERT.match(n["name"]) for n in nodes):
        return STORED
    return None


def stored_layout(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`nodes` with each fused expert parameter replaced by its stored tensors, depth first: under the fused
    parameter's module, one module per expert (its stored prefix, e.g. `...block_sparse_moe.experts.3`),
    the modules on the way, and one leaf per stored tensor (its stored name, shape and dtype)."""
    out: list[dict[str, Any]] = []
    made: set[str] = set()
    for node in nodes:
        if not is_fused_experts(node):
            out.append(node)
            continue
        shapes = node.get("stored_shapes") or [None] * len(node["stored"])
        dtypes = node.get("stored_dtypes") or [node.get("dtype")] * len(node["stored"])
        for name, shape, dtype in zip(node["stored"], shapes, dtypes):
            match = _EXPERT.match(name)
            parent = node["parent"]
            expert = match.group("expert")
            chain = [expert] + [f"{expert}.{'.'.join(match.group('rest').split('.')[:i])}"
                                for i in range(1, len(match.group("rest").split(".")))]
            for module in chain:
                if module not in made:
                    made.add(module)
                    out.append({"name": module, "parent": parent, "kind": "module",
                                "class": f"stored expert {match.group('index')}" if module == expert else "stored",
                                "shape": None, "numel": 0, "dtype": None, "component": node.get("component"),
                                "layer": node.get("layer"), "tied_to": None, "fused_into": node["name"]})
                parent = module
            numel = math.prod(shape) if shape is not None else 0
            out.append({"name": name, "parent": parent, "kind": "parameter", "class": None,
                        "shape": list(shape) if shape is not None else [], "numel": numel, "dtype": dtype,
                        "component": node.get("component"), "layer": node.get("layer"), "tied_to": None,
                        "stored": [name], "converted": False, "fused_into": node["name"]})
    by_name = {n["name"]: n for n in out}
    for n in out:  # a stored module's count is its leaves'
        if n.get("fused_into") and n["kind"] == "parameter":
            parent = by_name.get(n["parent"])
            while parent is not None and parent.get("fused_into"):
                parent["numel"] += n["numel"]
                parent = by_name.get(parent["parent"])
    return out


def layout_note(layout: str | None, can_toggle: bool, key: str = "e") -> str:
    """What the tree's root label says about the experts (empty for a model without experts)."""
    if layout is None:
        return ""
    if layout == FUSED:
        return f"experts as in memory (fused) · {key}: as stored"
    if can_toggle:
        return f"experts as stored · {key}: as in memory (fused)"
    return "experts as stored (read from the file headers)"


class ExpertLayoutMixin:
    """Part of `ExplorerApp`: which experts layout the tree draws (`e`), `shown_nodes` and `node_by_name`
    (both layouts' names open), the experts view's prompt from the palette, and the MoE demo's command."""

    nodes: list[dict[str, Any]]
    summary: dict[str, Any] | None
    node_by_name: dict[str, dict[str, Any]]

    def _init_expert_layout(self) -> None:
        self.expert_layout = FUSED
        self.shown_nodes: list[dict[str, Any]] = []

    def draw_tree(self) -> None:
        """Draw `nodes` in the chosen layout; names of both layouts open (links, search, back/forward)."""
        layout = expert_layout_of(self.nodes)
        can_toggle = layout == FUSED
        stored = stored_layout(self.nodes) if can_toggle else []
        self.shown_nodes = stored if can_toggle and self.expert_layout == STORED else self.nodes
        self.node_by_name = {n["name"]: n for n in stored} | {n["name"]: n for n in self.nodes}
        note = layout_note(expert_layout_of(self.shown_nodes), can_toggle, self._layout_key())
        self.model_tree.populate(self.shown_nodes, self.summary or {})
        for widget in self.query("#tree-note"):
            widget.update(note)
            widget.display = bool(note)

    def _layout_key(self) -> str:
        bindings = [b for b in getattr(self, "BINDINGS", []) if getattr(b, "id", None) == "tree.expert_layout"]
        keymap = getattr(self, "_keymap", None) or {}
        return keymap.get("tree.expert_layout") or (bindings[0].key if bindings else "e")

    def action_toggle_expert_layout(self) -> None:
        layout = expert_layout_of(self.nodes)
        if layout != FUSED:
            self.notify("this model's tree has no fused experts to draw another way" if layout is None else
                        "the tree read from the file headers is the stored layout; the fused one follows "
                        "once the worker has read the model", severity="warning")
            return
        self.expert_layout = STORED if self.expert_layout == FUSED else FUSED
        self.draw_tree()
        self.notify("experts drawn as stored: one tensor per expert" if self.expert_layout == STORED else
                    "experts drawn as in memory: one fused parameter per projection")

    def action_route_prompt(self) -> None:
        if self._once_mounted("experts", self.action_route_prompt):
            return
        self.show_view("experts")
        self.view("experts").route()

    def action_moe_demo(self) -> None:
        self.notify("the explorer shows one model per run: quit (q) and run `llm-internals --demo moe` "
                    "(a 3-layer Mixtral with 4 experts, top-2)", timeout=12)
