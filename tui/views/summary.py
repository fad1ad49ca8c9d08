"""Model root: the architecture card, the parameter breakdown as a bar chart, tying and memory."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from internals.cli.render import summary_rows
from tui.css import widget_css


def breakdown_chart(summary: dict[str, Any], width: int = 40) -> Table:
    total = summary["total_parameters"] or 1
    table = Table(title="Parameters by component", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_column(justify="right")
    for comp, n in summary["parameters_by_component"].items():
        if not n:
            continue
        share = n / total
        bar = Text("█" * max(1, round(share * width)), style="cyan")
        table.add_row(comp, bar, f"{n:,} ({100 * share:.1f}%)")
    return table


def layer_chart(summary: dict[str, Any], width: int = 30) -> Table:
    layers = summary.get("layers") or []
    table = Table(title="Per layer (attention | MLP)", title_justify="left", show_header=False, box=None)
    table.add_column(justify="right", style="dim")
    table.add_column()
    biggest = max((layer["parameters"] for layer in layers), default=1) or 1
    for layer in layers[:64]:
        attn = round(width * layer["attention"] / biggest)
        mlp = round(width * layer["mlp"] / biggest)
        table.add_row(str(layer["index"]), Text("▇" * attn, style="magenta") + Text("▇" * mlp, style="green"))
    if len(layers) > 64:
        table.add_row("…", Text(f"{len(layers) - 64} more layers"))
    return table


class SummaryView(VerticalScroll):
    DEFAULT_CSS = widget_css(__file__)
    data: dict[str, Any] | None = None  # what Export writes: the model card

    def compose(self):
        yield Static("loading the model's facts…", id="summary-body")

    def show(self, summary: dict[str, Any]) -> None:
        self.data = summary
        card = Table(title="Architecture", title_justify="left", show_header=False)
        card.add_column(style="bold cyan", no_wrap=True)
        card.add_column()
        for key, value in summary_rows(summary):
            card.add_row(key, value)
        tied = summary.get("tie_word_embeddings")
        shared = summary.get("embeddings_shared")
        check = Text("tied-embeddings check: ", style="bold")
        if summary.get("provisional"):
            check.append("waiting for the worker", style="dim")
        elif shared is None:
            check.append("no weights to check", style="dim")
        elif bool(tied) == bool(shared):
            check.append(f"config says {'tied' if tied else 'untied'}, stored tensors agree", style="green")
        else:
            check.append(
                f"config says {'tied' if tied else 'untied'} but the stored tensors are {'shared' if shared else 'separate'}",
                style="yellow",
            )
        parts: list[RenderableType] = [card, check, Text(""), breakdown_chart(summary), Text(""), layer_chart(summary)]
        if summary.get("provisional"):
            parts.insert(0, Text("provisional: read from the weight files' headers; the exact card follows "
                                 "as soon as the worker has built the model with transformers", style="yellow"))
        self.query_one("#summary-body", Static).update(Group(*parts))

    def export_data(self) -> Any:
        return self.data
