"""Labelled horizontal bars: one value per named item (tokens routed to each expert, each router-row norm).

Why text bars and not the plot canvas: a handful of named values (4 to 64 experts) reads best as one row per
item, label, bar and number, at any width; eighth-block characters give the bar ends sub-cell precision.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from tui.components.plotting import SERIES_COLORS
from tui.css import widget_css

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar_text(value: float, peak: float, width: int) -> str:
    """`value` as a bar of at most `width` cells (the peak fills them all), in eighths of a cell."""
    if peak <= 0 or width <= 0 or value <= 0:
        return ""
    eighths = round(8 * width * min(value, peak) / peak)
    return "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


class Bars(Widget):
    """`set_values(values, labels, title=...)`: one labelled bar per value, the largest filling the width."""

    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._title = title
        self.values: list[float] = []
        self.labels: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(Text(self._title, style="bold"), classes="bars--header")
        with VerticalScroll():
            yield Static("", classes="bars--body")

    def set_values(self, values: Sequence[float], labels: Sequence[str] | None = None, *, title: str | None = None) -> None:
        self.values = [float(v) for v in values]
        self.labels = list(labels) if labels is not None else [str(i) for i in range(len(self.values))]
        if title is not None:
            self._title = title
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(".bars--header", Static).update(Text(self._title, style="bold", no_wrap=True, overflow="ellipsis"))
        numbers = [f"{v:.4g}" for v in self.values]
        label_w = max((len(s) for s in self.labels), default=0)
        number_w = max((len(s) for s in numbers), default=0)
        width = max(1, self.size.width - label_w - number_w - 6)  # a space each side, the scrollbar
        peak = max(self.values, default=0.0)
        r, g, b = SERIES_COLORS[1]
        text = Text(no_wrap=True)
        for label, value, number in zip(self.labels, self.values, numbers):
            text.append(f"{label:>{label_w}} ")
            bar = bar_text(value, peak, width)
            text.append(bar, style=f"rgb({r},{g},{b})")
            text.append(" " * (width - len(bar) + 1) + f"{number:>{number_w}}\n", style="dim")
        self.query_one(".bars--body", Static).update(text)
