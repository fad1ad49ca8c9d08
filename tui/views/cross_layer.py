"""Cross-layer statistics: for each of q, k, v, o, gate, up, down, a line across layers, and a heat strip.

The seed notebook's aggregate weight plots, made cheap: the worker computes exact statistics tensor by
tensor (cached on disk), and only a few numbers per tensor come back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual import on
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Static

from tui.components.heat_strip import HeatStrip
from tui.components.lineplot import LinePlot
from tui.messages import OpenNode, Progress
from tui.views.base import RemoteView
from tui.css import widget_css

METRICS = ("std", "rms", "kurtosis", "abs_mean", "max_abs")


class CrossLayerView(RemoteView):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "next_metric", "Statistic", id="cross_layer.metric")]
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = "std"
        self.loaded = False

    def compose(self):
        yield Static("", classes="view-message")
        yield LinePlot(title="std across layers", id="cross-plot")
        yield HeatStrip(id="cross-strip")

    def focus_target(self) -> Widget:
        return self.query_one(LinePlot)  # arrows walk the layers, Enter opens that tensor

    def activate(self) -> None:
        if not self.loaded:
            self.fetch("data", lambda source: source.cross_layer(on_progress=self._progress), self._show,
                       loading="computing statistics of every layer's weights (cached after the first time)…")

    def _progress(self, fraction: float, message: str) -> None:
        self.post_message(Progress(fraction, message, status=False))  # drawn here only, not in the status bar

    def progress_text(self, fraction: float, message: str) -> str:
        return f"computing statistics… {100 * fraction:.0f}%  {message}"

    def _show(self, data: dict[str, Any]) -> None:
        self.data = data
        self.loaded = True
        self._draw()
        self.query_one(LinePlot).focus()

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        comps = [c for c in self.data["components"] if c != "norm"]
        values = self.data["metrics"][self.metric]
        mat = np.array([[np.nan if v is None else v for v in values[c]] for c in comps], dtype=np.float64)
        return comps, mat

    def _draw(self) -> None:
        if not self.data:
            return
        comps, mat = self._matrix()
        self.query_one(LinePlot).set_series({c: mat[i] for i, c in enumerate(comps)},
                                            title=f"{self.metric} of each weight across layers (m: next statistic, Enter: open)")
        self.query_one(HeatStrip).set_values(mat, components=comps, layers=list(range(mat.shape[1])), metric=self.metric)

    def metrics(self) -> tuple[str, ...]:
        """The statistics to cycle through; with a base open (`--base`) also each weight's relative change."""
        extra = ("rel_change",) if self.data and "rel_change" in self.data.get("metrics", {}) else ()
        return METRICS + extra

    def action_next_metric(self) -> None:
        metrics = self.metrics()
        self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics else metrics[0]
        self._draw()

    def _open(self, component: str, layer: int) -> None:
        name = (self.data or {}).get("names", {}).get(component, [None] * (layer + 1))[layer]
        if name:
            self.post_message(OpenNode(name, select_in_tree=True))

    @on(LinePlot.PointOpened)
    def _point(self, event: LinePlot.PointOpened) -> None:
        self._open(event.series, int(event.index))

    @on(HeatStrip.TensorPicked)
    def _cell(self, event: HeatStrip.TensorPicked) -> None:
        self._open(event.component, int(event.layer))
