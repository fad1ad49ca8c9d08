"""A router (gate) weight drawn for what it decides: each expert's router-row norm, and how alike the rows are.

Row e of a router weight [experts, hidden] scores expert e for a token; two experts whose rows point the same
way (cosine near 1) are chosen for the same tokens. Used by the tensor view (a router opened from the tree)
and the experts view (the router of the layer shown). Draws a `router_summary` result; fetches nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.containers import Horizontal

from tui.components.bars import Bars
from tui.components.heatmap import Heatmap
from tui.css import widget_css


class RouterPanel(Horizontal):
    DEFAULT_CSS = widget_css(__file__)
    summary: dict[str, Any] | None = None  # the router summary shown

    def compose(self):
        yield Heatmap(title="router rows: cosine similarity", ramp="diverging", vmin=-1.0, vmax=1.0,
                      row_axis="expert", col_axis="expert", classes="router-cosine")
        yield Bars(title="router row norm per expert", classes="router-norms")

    def show(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        experts = [f"e{e}" for e in range(summary["num_experts"])]
        where = f"layer {summary['layer']} " if summary.get("layer") is not None else ""
        self.query_one(".router-cosine", Heatmap).set_matrix(
            np.asarray(summary["cosine"], dtype=np.float64), row_labels=experts, col_labels=experts, vmin=-1.0,
            vmax=1.0, title=f"{where}router cosine")
        self.query_one(".router-norms", Bars).set_values(summary["row_norms"], experts,
                                                         title=f"{where}router row L2 norm per expert")
