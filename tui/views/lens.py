"""Logit lens: for every layer and position, the top next token when the final norm and LM head are
applied to that layer's residual stream; colour is its probability."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from textual import on
from textual.widget import Widget
from textual.widgets import Input, Static

from tui.components.lens_grid import LensGrid
from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView

DEFAULT_PROMPT = "import numpy as np\nx = np.zeros"


class LensView(PromptView):
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, GROUP, LOADING = "lens-prompt", DEFAULT_PROMPT, "lens", "running the logit lens…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracks: dict[str, Any] | None = None  # the followed tokens (lens_tracks), when asked

    def compose(self):
        yield self.prompt_input()
        yield Static("", classes="view-message")
        yield Static("", id="lens-info")
        yield LensGrid(id="lens-grid")
        yield Input(placeholder="follow tokens through the layers at the last position: tokens separated by | "
                                "(e.g. (|.), Enter", id="lens-track")
        yield Static("", id="lens-tracks")

    def focus_target(self) -> Widget:
        return self.query_one(LensGrid)

    @on(Input.Submitted, "#lens-track")
    def _track(self, event: Input.Submitted) -> None:
        tokens = [t for t in event.value.split("|") if t]
        if not tokens:
            return
        prompt = self.prompt
        self.fetch("lens-tracks", lambda source: source.lens_tracks(prompt, tokens, on_progress=self.progress),
                   self._show_tracks, loading="following the tokens through the layers…")

    def _show_tracks(self, tracks: dict[str, Any]) -> None:
        """One line per readout (after each attention block, after each layer): each token's rank and
        probability; * marks a token's best readout."""
        self.tracks = tracks
        best = {(b["layer"], b["stage"], b["token_id"]) for b in tracks["best"]}
        lines = [f"position {tracks['position']}: rank and probability of " + "  ".join(map(repr, tracks["labels"]))
                 + "  (* best)"]
        for row, readout in enumerate(tracks["readouts"]):
            stage = "attn " if readout["stage"] == "attention" else "layer"
            cells = [f"{label!r} #{int(tracks['ranks'][row][col])} {float(tracks['probs'][row][col]):.3f}"
                     + ("*" if (readout["layer"], readout["stage"], token) in best else " ")
                     for col, (label, token) in enumerate(zip(tracks["labels"], tracks["token_ids"]))]
            lines.append(f"L{readout['layer']} {stage}  " + "   ".join(cells))
        self.query_one("#lens-tracks", Static).update("\n".join(lines))

    def export_data(self) -> Any:
        return self.data if self.tracks is None else {**self.data, "tracks": self.tracks}

    def make_request(self) -> Callable[[DataSource], Any]:
        prompt = self.prompt
        return lambda source: source.lens(prompt, top_k=5, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        layers = data["layers"]
        pieces = [[row[0] for row in entry["top_tokens"]] for entry in layers]
        probs = np.array([[row[0] for row in np.asarray(entry["top_probs"]).tolist()] for entry in layers], dtype=np.float32)
        labels: list[int | str] = [entry.get("layer", i) for i, entry in enumerate(layers)]
        labels[-1] = "output"
        grid = self.query_one(LensGrid)
        grid.set_data(pieces, probs, layers=labels, input_pieces=data["tokens"])
        grid.focus()

    @on(LensGrid.CursorMoved)
    def _cursor(self, event: LensGrid.CursorMoved) -> None:
        if not self.data:
            return
        entry = self.data["layers"][event.row]
        tops = entry["top_tokens"][event.position]
        probs = np.asarray(entry["top_probs"])[event.position]
        alts = "  ".join(f"{t!r} {p:.2f}" for t, p in zip(tops, probs))
        self.query_one("#lens-info", Static).update(
            f"layer {event.layer}, after {self.data['tokens'][event.position]!r}: {alts}")
