"""Attention: a prompt, the selected head's token-labelled heatmap, and all heads as small multiples
grouped by the KV head they share (grouped-query attention made visible)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from internals.worker.contract import SINK_SHARE
from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples, gqa_groups
from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView, layer_bindings

DEFAULT_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"
MAX_EXACT_TOKENS = 96


class AttentionView(PromptView):
    BINDINGS: ClassVar[list[BindingType]] = [
        *layer_bindings("attention"),
        Binding("minus", "head(-1)", "Head -", id="attention.head_prev"),
        Binding("equals_sign", "head(1)", "Head +", id="attention.head_next"),
    ]
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, GROUP = "attention-prompt", DEFAULT_PROMPT, "attention"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer_idx = 0
        self.head_idx = 0
        self.num_layers = 1
        self.loaded_key: tuple[str, int] | None = None

    def compose(self):
        yield self.prompt_input()
        yield Static("", classes="view-message")
        yield Static("", id="attention-info")
        with Horizontal(id="attention-main"):
            yield Heatmap(title="attention", ramp="sequential", vmin=0.0, vmax=1.0, row_axis="query", col_axis="key",
                          id="attention-head")
            yield SmallMultiples(ramp="sequential", vmin=0.0, vmax=1.0, id="attention-all")

    def set_model(self, summary: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> None:
        """The model card (the app calls this when the model is read, and before mounting a late view)."""
        self.num_layers = summary.get("num_layers") or 1

    def focus_target(self) -> Widget:
        return self.query_one("#attention-head", Heatmap)  # so , . - = step layer and head at once

    def needs_request(self) -> bool:
        return self.loaded_key != (self.prompt, self.layer_idx)

    def focus_on(self, prompt: str | None = None, layer: int | None = None, head: int | None = None) -> None:
        if prompt:
            self.set_prompt(prompt)
        if layer is not None:
            self.layer_idx = layer % max(1, self.num_layers)
        if head is not None:
            self.head_idx = head
        self.request()

    def submitted(self) -> None:
        self.query_one("#attention-head", Heatmap).focus()

    def loading_text(self) -> str:
        return f"running the model on the prompt (layer {self.layer_idx})…"

    def make_request(self) -> Callable[[DataSource], Any]:
        prompt, layer = self.prompt, self.layer_idx
        return lambda source: source.attention(prompt, layer, bins=MAX_EXACT_TOKENS, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        self.loaded_key = (self.prompt, self.layer_idx)
        weights = data["weights"]
        heads = data["num_heads"]
        self.head_idx = min(self.head_idx, heads - 1)
        groups = gqa_groups(heads, data["num_key_value_heads"])
        self.query_one("#attention-all", SmallMultiples).set_matrices(
            weights, groups=groups, titles=[f"h{h}" + (" sink" if h in self.sink_heads() else "") for h in range(heads)])
        self.query_one("#attention-all", SmallMultiples).highlight(self.head_idx)
        self.draw_selected(data)

    def sink_heads(self) -> list[int]:
        """The heads whose mean attention on the first token (over query positions >= 1) is above SINK_SHARE."""
        shares = (self.data or {}).get("sink_share") or []
        return [h for h, share in enumerate(shares) if share > SINK_SHARE]

    def sink_note(self) -> str:
        """For the head's title (short: it is as wide as the map): an anchor and the sink share of a sink head."""
        if self.head_idx not in self.sink_heads():
            return ""
        return f" ⚓{self.data['sink_share'][self.head_idx]:.2f}"

    def labels(self) -> list[str]:
        """One label per matrix row: the token, or for a binned long prompt the block's span and first token."""
        data = self.data
        edges = data.get("bin_edges")
        if not edges:
            return list(data["tokens"])
        return [f"{a}-{b - 1} {data['tokens'][a]}" for a, b in zip(edges, edges[1:])]

    def draw_selected(self, data: dict[str, Any]) -> None:
        """The selected head's map and the line under it."""
        tokens = self.labels()
        kv = data["kv_head_of"][self.head_idx]
        self.query_one("#attention-head", Heatmap).set_matrix(
            data["weights"][self.head_idx], row_labels=tokens, col_labels=tokens, vmin=0.0, vmax=1.0,
            title=f"L{data['layer']} H{self.head_idx} (KV {kv})" + self.sink_note())
        binned = f"  ·  {data['num_tokens']} tokens shown as {len(tokens)} blocks (block means)" if data.get("bin_edges") else ""
        self.query_one("#attention-info", Static).update(
            f"layer {data['layer']}/{self.num_layers - 1}  head {self.head_idx}/{data['num_heads'] - 1}  "
            f"{data['num_heads']} query heads share {data['num_key_value_heads']} KV heads  ·  , . layer  - = head{binned}")

    @on(Heatmap.CursorMoved, "#attention-head")
    def _cursor(self, event: Heatmap.CursorMoved) -> None:
        if not self.data or event.masked:
            return
        tokens = self.labels()
        q, k = event.row, event.col
        self.query_one("#attention-info", Static).update(
            f"query {q} {tokens[q]!r} → key {k} {tokens[k]!r}: {event.value:.4f}   "
            f"(layer {self.data['layer']} head {self.head_idx})"
        )

    @on(SmallMultiples.Selected)
    def _pick_head(self, event: SmallMultiples.Selected) -> None:
        self.head_idx = event.index
        self.redraw()

    def action_layer(self, step: int) -> None:
        self.layer_idx = (self.layer_idx + step) % max(1, self.num_layers)
        self.request()

    def action_head(self, step: int) -> None:
        if self.data:
            self.head_idx = (self.head_idx + step) % self.data["num_heads"]
            self.query_one("#attention-all", SmallMultiples).highlight(self.head_idx)
            self.draw_selected(self.data)
