"""Direct logit attribution: how much the embedding, each attention block and each MLP add to the logit of
one token at the last position (and, for the selected layer, each head), as signed bars, with the identity
that checks them: their sum plus the bias is the logit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Static

from tui.css import widget_css
from tui.data_source import DataSource
from tui.views.base import PromptView, layer_bindings

DEFAULT_PROMPT = "def f(x): return x"
BAR_WIDTH = 24  # characters on each side of zero, at most


def signed_bars(rows: list[tuple[str, float]], scale: float, selected: str | None = None,
                bar_width: int = BAR_WIDTH) -> Text:
    """One line per (label, value): the value and a bar to the left (negative, red) or right (positive, green)
    of a zero axis, `bar_width` characters for |value| = scale."""
    text = Text(no_wrap=True)
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        length = 0 if scale <= 0 else round(bar_width * min(1.0, abs(value) / scale))
        left = ("█" * length if value < 0 else "").rjust(bar_width)
        right = ("█" * length if value > 0 else "").ljust(bar_width)
        style = "reverse" if label == selected else ""
        text.append(f"{label:<{width}} {value:+8.3f} ", style=style)
        text.append(left, style="red")
        text.append("│")
        text.append(right, style="green")
        text.append("\n")
    return text


class AttributionView(PromptView):
    BINDINGS: ClassVar[list[BindingType]] = [
        *layer_bindings("attribution"),
    ]
    DEFAULT_CSS = widget_css(__file__)
    PROMPT_ID, DEFAULT_PROMPT, GROUP, LOADING = "attribution-prompt", DEFAULT_PROMPT, "attribute", "attributing the logit…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = ""
        self.layer_idx = 0

    def compose(self):
        with Horizontal(id="attribution-inputs"):
            yield self.prompt_input()
            yield Input(value="", placeholder="target token (optional)", id="attribution-target")
        yield Static("", classes="view-message")
        yield Static("", id="attribution-identity")
        with Horizontal(id="attribution-main"):
            with VerticalScroll(id="attribution-parts-scroll", can_focus=True):
                yield Static("", id="attribution-parts")
            with VerticalScroll(id="attribution-heads-scroll"):
                yield Static("", id="attribution-heads")

    def focus_target(self) -> Widget:
        return self.query_one("#attribution-parts-scroll")

    def take_input(self, event: Input.Submitted) -> bool:
        """Enter in either box asks again, with both."""
        self.prompt = self.query_one("#attribution-prompt", Input).value.replace("⏎", "\n")
        self.target = self.query_one("#attribution-target", Input).value
        return True

    def make_request(self) -> Callable[[DataSource], Any]:
        prompt, target = self.prompt, self.target or None
        return lambda source: source.attribute(prompt, target=target, on_progress=self.progress)

    def show(self, data: dict[str, Any]) -> None:
        self.layer_idx = min(self.layer_idx, len(data["attention"]) - 1)
        self.draw_selected(data)
        self.focus_if_shown()

    def parts(self) -> list[tuple[str, float]]:
        data = self.data
        rows = [("embedding", data["embedding"])]
        for layer, (attention, mlp) in enumerate(zip(data["attention"], data["mlp"])):
            rows += [(f"L{layer} attention", attention), (f"L{layer} MLP", mlp)]
        return [*rows, ("bias", data["bias"])]

    def identity(self) -> str:
        data = self.data
        total = data["embedding"] + sum(data["attention"]) + sum(data["mlp"])
        return (f"logit of {data['target']!r} after {data['tokens'][-1]!r}:  sum {total:+.4f} + bias {data['bias']:+.4f} "
                f"= {total + data['bias']:+.4f}   (logit {data['logit']:+.4f})  ·  , . layer")

    def draw_selected(self, data: dict[str, Any]) -> None:
        """The parts' bars and the selected layer's heads."""
        rows = self.parts()
        heads = data["heads"][self.layer_idx]
        scale = max(abs(v) for _, v in rows + [(h, v) for h, v in enumerate(heads)]) or 1.0
        self.query_one("#attribution-identity", Static).update(self.identity())
        bars = self.bar_width()
        self.query_one("#attribution-parts", Static).update(
            signed_bars(rows, scale, selected=f"L{self.layer_idx} attention", bar_width=bars))
        head_rows = [(f"L{self.layer_idx} h{h}", v) for h, v in enumerate(heads)]
        text = Text(f"layer {self.layer_idx} heads: sum {sum(heads):+.3f}\n")
        text.append_text(signed_bars(head_rows, scale, bar_width=bars))
        self.query_one("#attribution-heads", Static).update(text)

    def bar_width(self) -> int:
        """Bar characters on each side of zero that fit a column beside the labels and values."""
        column = self.query_one("#attribution-parts-scroll").size.width
        return max(3, min(BAR_WIDTH, (column - 2 - 24) // 2)) if column else BAR_WIDTH

    def on_resize(self) -> None:
        self.redraw()

    def action_layer(self, step: int) -> None:
        if self.data:
            self.layer_idx = (self.layer_idx + step) % len(self.data["attention"])
            self.draw_selected(self.data)
