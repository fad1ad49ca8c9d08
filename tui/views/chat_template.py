"""Chat template: the open model's chat template rendered for a short conversation, token by token.

Why: chat models are prompted through a Jinja template that writes special tokens around each turn; seeing the
exact tokens (id, vocabulary piece, special or added) shows what the model is conditioned on, and whether the
config's BOS id is the one the tokenizer and template actually write. The worker renders it (it owns the model
folder: `chat_template` operation); a base model without a template gets a plain message saying so.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Static

from tui.css import widget_css
from tui.views.base import RemoteView


def bos_line(data: dict[str, Any]) -> str:
    """The tokenizer's BOS next to config.json's bos_token_id, and whether they agree."""
    tok = data.get("tokenizer_bos_token")
    tok_id = data.get("tokenizer_bos_id")
    cfg_id = data.get("config_bos_token_id")
    cfg_piece = data.get("config_bos_piece")
    agree = data.get("bos_ids_agree")
    verdict = {True: "they agree", False: "they DIFFER: the template writes the tokenizer's", None: "one is unknown"}
    return (f"BOS: tokenizer {tok!r} (id {tok_id}) · config.json bos_token_id {cfg_id} ({cfg_piece!r}) · "
            f"{verdict[agree]}")


class ChatTemplateView(RemoteView):
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = False

    def compose(self):
        yield Static("", classes="view-message")
        yield Static("", id="chat-info")
        yield Static("", id="chat-text")
        yield DataTable(id="chat-tokens", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for part in ("#chat-text", "#chat-tokens"):
            self.query_one(part).display = False  # until there is a rendering to show

    def focus_target(self) -> Widget:
        return self.query_one("#chat-tokens", DataTable)

    def activate(self) -> None:
        if not self.loaded:
            self.loaded = True  # asked once: the template does not change while the model is open
            self.fetch("chat-template", lambda source: source.chat_template(), self._show,
                       loading="rendering the chat template…")

    def _show(self, data: dict[str, Any]) -> None:
        self.data = data
        tokens = data["tokens"]
        specials = sum(1 for t in tokens if t["special"])
        self.query_one("#chat-info", Static).update(
            f"[b]chat template[/b] from {data['template_source']} · {len(tokens)} tokens, {specials} special\n"
            + bos_line(data).replace("[", "\\["))
        text = Text()
        for t in tokens:
            text.append(t["text"], style="bold black on yellow" if t["special"] else
                        "bold cyan" if t["added"] else "")
        self.query_one("#chat-text", Static).update(text)
        for part in ("#chat-text", "#chat-tokens"):
            self.query_one(part).display = True
        table = self.query_one("#chat-tokens", DataTable)
        table.clear(columns=True)
        table.add_columns("#", "id", "piece", "text", "kind")
        for i, t in enumerate(tokens):
            style = "bold yellow" if t["special"] else "cyan" if t["added"] else ""
            kind = "special" if t["special"] else "added" if t["added"] else ""
            table.add_row(str(i), str(t["id"]), Text(repr(t["piece"]), style=style), Text(repr(t["text"])),
                          Text(kind, style=style))

    def export_data(self) -> Any:
        """The rendering, or the reason there is none (e.g. a base model without a template)."""
        if self.data is not None:
            return self.data
        return {"error": str(self.message_widget().render())}
