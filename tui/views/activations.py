"""The residual stream on a prompt: its L2 norm at every layer and position (a heatmap with token labels),
its largest activations (massive ones flagged by Sun et al.'s rule) and the heads that are attention sinks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from textual import on
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from internals.worker.contract import SINK_SHARE
from tui.components.heatmap import Heatmap
from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView

DEFAULT_PROMPT = "def f(x): return x"


class ActivationsView(PromptView):
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, GROUP = "activations-prompt", DEFAULT_PROMPT, "activations"

    def compose(self):
        yield self.prompt_input()
        yield Static("", classes="view-message")
        yield Static("", id="activations-info")
        with Horizontal(id="activations-main"):
            yield Heatmap(title="residual norm", ramp="sequential", row_axis="layer", col_axis="position", max_scale=8,
                          id="activations-norms")
            yield Static("", id="activations-massive")

    def focus_target(self) -> Widget:
        return self.query_one("#activations-norms", Heatmap)

    def make_request(self) -> Callable[[DataSource], Any]:
        prompt = self.prompt
        return lambda source: source.activations(prompt, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        norms = np.asarray(data["residual_norm"], dtype=np.float32)
        rows = ["embed" if name == "embed" else f"L{name}" for name in data["layers"]]
        heatmap = self.query_one("#activations-norms", Heatmap)
        heatmap.set_matrix(norms, row_labels=rows, col_labels=list(data["tokens"]), title="residual stream L2 norm")
        self.query_one("#activations-massive", Static).update(self.describe())
        self.focus_if_shown(heatmap)

    def sink_heads(self) -> list[tuple[int, int, float]]:
        """(layer, head, share) of every head whose mean attention on the first token is above SINK_SHARE."""
        shares = np.asarray(self.data["sink_share"], dtype=np.float64)
        return [(layer, head, float(shares[layer, head])) for layer, head in zip(*np.nonzero(shares > SINK_SHARE))]

    def describe(self) -> str:
        data = self.data
        lines = ["largest activations (* massive)", "value  layer pos chan token"]
        for m in data["massive"][:12]:
            lines.append(f"{m['value']:8.1f} {m['layer']!s:>5} {m['position']:3} {m['channel']:4} {m['token']!r}"
                         + (" *" if m["is_massive"] else ""))
        channels = [c["channel"] for c in data["massive_channels"]]
        lines += ["", f"massive channels: {' '.join(map(str, channels)) or 'none'}", f"rule: {data['rule']}", "",
                  f"sink heads (share > {SINK_SHARE}):"]
        sinks = self.sink_heads()
        lines += [f"  L{layer} H{head} {share:.2f}" for layer, head, share in sinks] or ["  none"]
        return "\n".join(lines)

    @on(Heatmap.CursorMoved, "#activations-norms")
    def _cursor(self, event: Heatmap.CursorMoved) -> None:
        if not self.data:
            return
        layer = self.data["layers"][event.row]
        where = "the embedding" if layer == "embed" else f"after layer {layer}"
        self.query_one("#activations-info", Static).update(
            f"{where}, position {event.col} {self.data['tokens'][event.col]!r}: norm {event.value:.2f}")
