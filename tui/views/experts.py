"""Experts: which experts a mixture-of-experts model routes each token of a prompt to, layer by layer.

A tokens × experts heatmap of the routing weights the model's own router gave (zero where an expert was not
chosen), the layer's load (tokens per expert) as bars, and the layer's router weight: each expert's row norm
and the cosine similarity between the rows. `,` / `.` move between the MoE layers (the attention view's keys).
The routing comes from the worker's `experts` operation, the router panel from `router_summary`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from textual import on
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from tui.components.bars import Bars
from tui.components.heatmap import Heatmap
from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView, layer_bindings
from tui.views.router_panel import RouterPanel

DEFAULT_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"


def routers_by_layer(nodes: list[dict[str, Any]]) -> dict[int, str]:
    """The router (gate) weight [experts, hidden] of each layer, from the model tree."""
    return {n["layer"]: n["name"] for n in nodes
            if n.get("kind") == "parameter" and n.get("component") == "router" and len(n.get("shape") or []) == 2
            and n.get("layer") is not None and not n.get("tied_to")}


def routing_matrix(layer: dict[str, Any], num_experts: int) -> np.ndarray:
    """[tokens, experts]: the weight each token's chosen experts got, 0 for the experts it was not sent to."""
    matrix = np.zeros((len(layer["experts"]), num_experts), dtype=np.float64)
    for t, (chosen, weights) in enumerate(zip(layer["experts"], layer["weights"])):
        matrix[t, chosen] = weights
    return matrix


class ExpertsView(PromptView):
    BINDINGS: ClassVar[list[BindingType]] = [
        *layer_bindings("experts"),
    ]
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, PROMPT_PLACEHOLDER = "experts-prompt", DEFAULT_PROMPT, "prompt (Enter routes it)"
    GROUP, LOADING = "experts", "running the model on the prompt (reading every MoE layer's router)…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.position = 0  # index into the routed (MoE) layers
        self.routers: dict[int, str] = {}
        self.loaded_prompt: str | None = None
        self.router: dict[str, Any] | None = None
        self._wanted_layer: int | None = None

    def compose(self):
        yield self.prompt_input()
        yield Static("", classes="view-message")
        yield Static("", id="experts-info")
        with Horizontal(id="experts-main"):
            yield Heatmap(title="routing weights", ramp="sequential", vmin=0.0, vmax=1.0, row_axis="token",
                          col_axis="expert", id="experts-routing")
            yield Bars(title="load: tokens routed to each expert", id="experts-load")
        yield RouterPanel(id="experts-router")

    def set_model(self, summary: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> None:
        """The model card and tree (the app calls this when the model is read, and before mounting)."""
        self.routers = routers_by_layer(nodes or [])

    def focus_target(self) -> Widget:
        return self.query_one("#experts-routing", Heatmap)  # so , . step layers at once

    def needs_request(self) -> bool:
        return self.loaded_prompt != self.prompt

    def focus_on(self, prompt: str | None = None, layer: int | None = None) -> None:
        """Route `prompt` (default: the one in the box) and show decoder layer `layer` once routed."""
        if prompt:
            self.set_prompt(prompt)
        self._wanted_layer = layer
        self.route()

    def submitted(self) -> None:
        self.query_one("#experts-routing", Heatmap).focus()

    def route(self) -> None:
        """Ask the worker which experts each token of the prompt goes to (a newer request cancels this one)."""
        self.request()

    def make_request(self) -> Callable[[DataSource], Any]:
        prompt = self.prompt
        return lambda source: source.experts(prompt, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        self.loaded_prompt = self.prompt
        layers = [entry["layer"] for entry in data["layers"]]
        wanted = self._wanted_layer
        if wanted is not None and wanted in layers:
            self.position = layers.index(wanted)
        self.position = min(self.position, max(0, len(layers) - 1))
        self._draw()

    def current_layer(self) -> dict[str, Any] | None:
        layers = (self.data or {}).get("layers") or []
        return layers[self.position] if layers else None

    def _draw(self) -> None:
        layer = self.current_layer()
        if layer is None:
            return
        data = self.data
        experts = [f"e{e}" for e in range(data["num_experts"])]
        self.query_one("#experts-routing", Heatmap).set_matrix(
            routing_matrix(layer, data["num_experts"]), row_labels=data["tokens"], col_labels=experts,
            vmin=0.0, vmax=1.0, title=f"L{layer['layer']} routing")
        unused = ", ".join(f"e{e}" for e in layer["unused"]) or "none"
        self.query_one("#experts-load", Bars).set_values(
            layer["load"], experts, title=f"layer {layer['layer']} load: tokens per expert (unused: {unused})")
        self._info()
        name = self.routers.get(layer["layer"])
        self.query_one("#experts-router").display = bool(name)
        if name:
            self.fetch("router", lambda source: source.router_summary(name), self._show_router,
                       loading="reading the router weight…")

    def _show_router(self, summary: dict[str, Any]) -> None:
        self.router = summary
        self.query_one("#experts-router", RouterPanel).show(summary)

    def _info(self, extra: str = "") -> None:
        layer, data = self.current_layer(), self.data
        if layer is None or data is None:  # nothing routed yet
            return
        count = len(data["layers"])
        self.query_one("#experts-info", Static).update(
            extra or f"MoE layer {layer['layer']} ({self.position + 1} of {count})  ·  top-{data['top_k']} of "
                     f"{data['num_experts']} experts  ·  {len(data['tokens'])} tokens  ·  , . layer")

    @on(Heatmap.CursorMoved, "#experts-routing")
    def _cursor(self, event: Heatmap.CursorMoved) -> None:
        layer = self.current_layer()
        if layer is None or event.masked:
            return
        t, e = event.row, event.col
        chosen = layer["experts"][t]
        rank = f"its choice {chosen.index(e) + 1} of {len(chosen)}" if e in chosen else "not chosen"
        self._info(f"layer {layer['layer']}  token {t} {self.data['tokens'][t]!r} → expert {e}: weight "
                   f"{event.value:.3f} ({rank})  ·  , . layer")

    def action_layer(self, step: int) -> None:
        if self.data and self.data["layers"]:
            self.position = (self.position + step) % len(self.data["layers"])
            self._draw()

    def export_data(self) -> Any:
        layer = self.current_layer()
        return {"routing": self.data, "layer": layer["layer"] if layer else None, "router": self.router}
