"""A layer or module: its children with parameter counts and shares."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from internals.cli.render import human_count
from tui.css import widget_css


class ModuleView(VerticalScroll):
    DEFAULT_CSS = widget_css(__file__)
    data: dict[str, Any] | None = None  # what Export writes: the module and its children

    def compose(self):
        yield Static("", id="module-body")

    def show(self, node: dict[str, Any], children: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        total = node["numel"] or 1
        model_total = summary.get("total_parameters") or total
        table = Table(title=f"{node['name']} ({node.get('class')})", title_justify="left")
        table.add_column("child")
        table.add_column("kind")
        table.add_column("shape")
        table.add_column("parameters", justify="right")
        table.add_column("share", justify="right")
        table.add_column("", min_width=20)
        for child in children:
            share = child["numel"] / total if total else 0.0
            kind = child.get("class") or child.get("component") or ""
            shape = "×".join(map(str, child["shape"])) if child.get("shape") else ""
            table.add_row(child["name"].rsplit(".", 1)[-1], kind, shape, f"{child['numel']:,}", f"{100 * share:.1f}%",
                          Text("█" * max(0, round(20 * share)), style="cyan"))
        head = Text(
            f"{human_count(node['numel'])} parameters, {100 * node['numel'] / model_total:.2f}% of the model", style="bold"
        )
        self.data = {"module": node, "children": children}
        from rich.console import Group

        self.query_one("#module-body", Static).update(Group(head, table))

    def export_data(self) -> Any:
        return self.data
