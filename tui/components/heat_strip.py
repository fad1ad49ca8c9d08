"""A layers × components heat strip: one statistic of every weight matrix of the model at a glance.

Rows are components (q, k, v, o, gate, up, down), columns are layers, the colour is a statistic
(std, RMS, kurtosis...) the engine computed. It is a `Heatmap` with one component per terminal
line (so each row has its own, exactly aligned label) and a few cells per layer, so an odd layer
or component stands out; selecting a cell tells the parent which tensor to open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from typing_extensions import Unpack

from tui.components.cursor_grid import WidgetMessage
from tui.components.heatmap import CellMessage, Heatmap, _Geometry
from tui.components.options import ColourLimits, WidgetOptions, assign_given
from tui.components.reduce import BlockReduce
from tui.components.theme import Ramp, format_value
from tui.css import widget_css

DEFAULT_COMPONENTS: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")


class StripUpdate(ColourLimits, total=False):
    """What `HeatStrip.set_values` may change besides the values (absent or None: keep the current one)."""

    components: Sequence[str] | None
    layers: Sequence[int] | None
    metric: str | None


class HeatStrip(Heatmap):
    """Components (rows) × layers (columns) heat strip with a cursor.

    Posts the inherited `Heatmap.CursorMoved` / `Heatmap.CellSelected` (with `row` = component
    index and `col` = layer index) and, on Enter or click, `HeatStrip.TensorPicked` with the
    component name and layer number, which is all the parent needs to find the tensor.
    """

    DEFAULT_CSS = widget_css(__file__)

    class TensorPicked(WidgetMessage):
        """Enter/click on a cell: open the tensor of `component` in `layer`."""

        SENDER = "strip"
        FIELDS = ("component", "layer", "value")
        strip: HeatStrip
        component: str
        layer: int
        value: float

    def __init__(
        self,
        values: object | None = None,
        *,
        components: Sequence[str] = DEFAULT_COMPONENTS,
        layers: Sequence[int] | None = None,
        metric: str = "std",
        ramp: Ramp | str = "sequential",
        vmin: float | None = None,
        vmax: float | None = None,
        reduce: BlockReduce | None = "mean",
        max_cell_width: int = 4,
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the strip.

        Args:
            values: `len(components) × num_layers` statistic values (NaN = not present, e.g. no bias).
            components: Row names, in order.
            layers: Layer number of each column (default 0..n-1).
            metric: Name of the statistic, shown in the title.
            ramp: Colour ramp ("sequential" for std/RMS, "diverging" for signed values).
            vmin: Lower colour limit (default: data min).
            vmax: Upper colour limit (default: data max).
            reduce: Block reduction when there are more layers than columns.
            max_cell_width: Most cells per layer.
        """
        self._components: Sequence[str] = list(components)
        self._layers: Sequence[int] | None = list(layers) if layers is not None else None
        self._metric = metric
        self._max_cell_width = max_cell_width
        super().__init__(
            None, title=metric, row_axis="", col_axis="layer", ramp=ramp, vmin=vmin, vmax=vmax,
            reduce=reduce, keep_aspect=False, **options,
        )  # fmt: skip
        if values is not None:
            self.set_values(values, components=components, layers=layers, metric=metric)

    @property
    def components(self) -> list[str]:
        """Row names."""
        return list(self._components)

    def set_values(self, values: object, **update: Unpack[StripUpdate]) -> None:
        """Replace the values, and whatever of the row names, layer numbers, metric name and colour limits is given."""
        assign_given(self, **update)  # the strip's _components, _layers, _metric; the heatmap's _vmin, _vmax
        cols = np.asarray(values).shape[-1]
        if self._layers is None or len(self._layers) != cols:
            self._layers = list(range(cols))
        self.set_matrix(values, row_labels=self._components, col_labels=[str(layer) for layer in self._layers],
                        title=self._metric)

    def _choose_cell(self, rows: int, cols: int, avail_cols: int, avail_half: int) -> tuple[int, int, int, int]:
        """One component per line (2 half-rows), a few cells per layer; merge layers if too many."""
        sx = max(1, min(self._max_cell_width, avail_cols // max(1, cols)))
        fc = math.ceil(cols / max(1, avail_cols // sx))
        fr = math.ceil(rows / max(1, avail_half // 2))
        return fr, fc, sx, 2

    def _status_text(self, geo: _Geometry) -> str:
        """"k · layer 12: 0.0213" (or "layers 12-14" when layers are merged)."""
        if self._data is None:
            return ""
        message = self._cell_message(self.CursorMoved, geo)
        component = self._components[message.row]
        first = self._layer_of(message.col_span.start)
        last = self._layer_of(message.col_span.stop - 1)
        layer = f"layer {first}" if first == last else f"layers {first}-{last}"
        return f"{component} · {layer}: {format_value(message.value)}"

    def _layer_of(self, col: int) -> int:
        return self._layers[col] if self._layers is not None else col

    def _post_cursor(self, kind: type[CellMessage]) -> None:
        super()._post_cursor(kind)
        geo = self._get_geometry()
        if kind is self.CellSelected and geo is not None:
            message = self._cell_message(kind, geo)
            self.post_message(
                self.TensorPicked(self, self._components[message.row], self._layer_of(message.col), message.value)
            )


__all__ = ["DEFAULT_COMPONENTS", "HeatStrip", "StripUpdate"]
