"""Tokens: the prompt split into its pieces with ids; pick one to see its embedding's nearest neighbours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table
from textual import on
from textual.widget import Widget
from textual.widgets import Static

from tui.components.tokens import TokenStrip
from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView

DEFAULT_TEXT = "def __init__(self, name):\n    self.name = name  # café 中文"


class TokensView(PromptView):
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, PROMPT_PLACEHOLDER = "tokens-input", DEFAULT_TEXT, "text to tokenize (Enter)"
    GROUP, LOADING = "tokenize", "tokenizing…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.neighbours: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The text tokenized (the prompt box's)."""
        return self.prompt

    @text.setter
    def text(self, value: str) -> None:
        self.prompt = value

    def compose(self):
        yield self.prompt_input()
        yield Static("", classes="view-message")
        yield TokenStrip(id="tokens-strip")
        yield Static("Enter on a token shows its nearest neighbours in the embedding matrix.", id="tokens-neighbours")

    def focus_target(self) -> Widget:
        return self.query_one(TokenStrip)  # arrows pick a token, Enter shows its neighbours

    def make_request(self) -> Callable[[DataSource], Any]:
        text = self.text
        return lambda source: source.tokenize(text, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        strip = self.query_one(TokenStrip)
        strip.set_tokens(data.get("labels") or data["pieces"], data["ids"], special=data.get("special"))
        strip.focus()

    @on(TokenStrip.TokenPicked)
    def _picked(self, event: TokenStrip.TokenPicked) -> None:
        if event.token_id is None:
            return
        token_id, piece = int(event.token_id), event.piece
        self.fetch("neighbours", lambda source: source.neighbours(token_id, k=12),
                   lambda d: self._show_neighbours(piece, token_id, d), loading="searching the embedding matrix…")

    def _show_neighbours(self, piece: str, token_id: int, data: dict[str, Any]) -> None:
        self.neighbours = data
        table = Table(title=f"nearest input embeddings to {piece!r} (id {token_id}), cosine", title_justify="left")
        table.add_column("token")
        table.add_column("id", justify="right")
        table.add_column("cosine", justify="right")
        for tid, p, c in zip(data["ids"], data["pieces"], data["cosine"]):
            table.add_row(repr(p), str(tid), f"{c:.3f}")
        self.query_one("#tokens-neighbours", Static).update(table)

    def export_data(self) -> Any:
        return {"tokens": self.data, "neighbours": self.neighbours}
