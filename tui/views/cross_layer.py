"""Cross-layer statistics: for each of q, k, v, o, gate, up, down, a line across layers, and a heat strip.

The seed notebook's aggregate weight plots, made cheap: the worker computes exact statistics tensor by
tensor (cached on disk), and only a few numbers per tensor come back. The spectral metrics (α of the
power-law tail, stable rank, spikes beyond the Marchenko–Pastur edge) come from the whole-model `spectra`
request, asked for the first time one of them is picked (with a progress line; cached on disk after).
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
from tui.css import widget_css
from tui.messages import OpenNode, Progress, SpectraComputed
from tui.views.base import RemoteView

METRICS = ("std", "rms", "kurtosis", "abs_mean", "max_abs", "alpha", "stable_rank", "spikes")
#: The metrics of the whole-model spectra (`spectra` request) rather than of the statistics.
SPECTRAL = ("alpha", "stable_rank", "spikes")
LABELS = {"alpha": "α (power-law tail)", "stable_rank": "stable rank", "spikes": "spikes beyond the MP edge"}


class CrossLayerView(RemoteView):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "next_metric", "Statistic", id="cross_layer.metric")]
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = "std"
        self.loaded = False
        self.spectra: dict[str, Any] | None = None

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
        what = "spectra" if self.metric in SPECTRAL else "statistics"
        bar = "█" * int(20 * fraction) + "░" * (20 - int(20 * fraction))
        return f"computing {what}… {bar} {100 * fraction:.0f}%  {message}  (Esc: stop)"

    def show_metric(self, metric: str) -> None:
        """Draw `metric`; a spectral one asks for the whole model's spectra the first time."""
        self.metric = metric
        if metric in SPECTRAL and self.spectra is None:
            self.fetch("spectra", lambda source: source.spectra(on_progress=self._progress), self._show_spectra,
                       loading="computing the spectra of every weight matrix (cached after the first time)…")
            return
        self._draw()

    def _show_spectra(self, spectra: dict[str, Any]) -> None:
        self.spectra = spectra
        self.post_message(SpectraComputed(spectra))  # the app badges the tree
        self._draw()

    def key_escape(self) -> None:
        """Stop the spectra being computed (the worker cancels the request; what was done stays cached)."""
        if self.spectra is None and self.metric in SPECTRAL:
            self.workers.cancel_group(self, f"{self.id}-spectra")
            self._serials["spectra"] = self._serials.get("spectra", 0) + 1  # drop a late answer
            self.metric = "std"
            self.set_message("spectra stopped: pick α again (m) to resume; what was computed is cached")
            self._draw()

    def _show(self, data: dict[str, Any]) -> None:
        self.data = data
        self.loaded = True
        self._draw()
        self.query_one(LinePlot).focus()

    def _table(self) -> dict[str, Any]:
        """The data of the metric shown: the statistics, or the spectra for a spectral metric."""
        return self.spectra if self.metric in SPECTRAL and self.spectra else self.data

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        table = self._table()
        comps = [c for c in table["components"] if c != "norm"]
        values = table["metrics"][self.metric]
        mat = np.array([[np.nan if v is None else v for v in values[c]] for c in comps], dtype=np.float64)
        return comps, mat

    def _draw(self) -> None:
        if not self.data or (self.metric in SPECTRAL and not self.spectra):
            return
        comps, mat = self._matrix()
        label = LABELS.get(self.metric, self.metric)
        self.query_one(LinePlot).set_series({c: mat[i] for i, c in enumerate(comps)},
                                            title=f"{label} of each weight across layers (m: next statistic, Enter: open)")
        self.query_one(HeatStrip).set_values(mat, components=comps, layers=list(range(mat.shape[1])), metric=self.metric)

    def metrics(self) -> tuple[str, ...]:
        """The statistics to cycle through; with a base open (`--base`) also each weight's relative change."""
        extra = ("rel_change",) if self.data and "rel_change" in self.data.get("metrics", {}) else ()
        return METRICS + extra

    def action_next_metric(self) -> None:
        metrics = self.metrics()
        self.show_metric(metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics else metrics[0])

    def _open(self, component: str, layer: int) -> None:
        name = (self._table() or {}).get("names", {}).get(component, [None] * (layer + 1))[layer]
        if name:
            self.post_message(OpenNode(name, select_in_tree=True))

    @on(LinePlot.PointOpened)
    def _point(self, event: LinePlot.PointOpened) -> None:
        self._open(event.series, int(event.index))

    def export_data(self) -> Any:
        """The statistics as before, plus the spectra (when computed) and the metric shown."""
        return {**(self.data or {}), "spectra": self.spectra, "metric": self.metric}

    @on(HeatStrip.TensorPicked)
    def _cell(self, event: HeatStrip.TensorPicked) -> None:
        self._open(event.component, int(event.layer))
