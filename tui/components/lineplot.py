"""Line plots across layers (x = layer index), e.g. the std of q/k/v/o/gate/up/down per layer.

Why a widget of its own: cross-layer trends are the quickest way to spot an odd layer, and the user
wants to put a marker on a layer and open that layer's tensor. Series are drawn through
`tui.components.plotting` (plotext braille lines), downsampled to about two points per column
with min/max buckets so that a one-layer spike survives; x ticks are integer layer numbers.
Left/right move the marker along the selected series, up/down change the series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widget import Widget
from textual.widgets import Static
from typing_extensions import Unpack

from tui.components import cursor_grid
from tui.components.cursor_grid import CursorGrid, cursor_bindings
from tui.components.options import WidgetOptions
from tui.components.plotting import SERIES_COLORS, LineSeries, PlotCanvas, PlotPoint, PlotSpec
from tui.components.reduce import downsample_series
from tui.components.theme import format_tick, format_value, nice_step
from tui.css import widget_css

_Y_AXIS_COLUMNS = 10


class LinePlot(CursorGrid, Widget, can_focus=True):
    """Several series over layers with a movable marker on one selected point."""

    DEFAULT_CSS = widget_css(__file__)

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings("lineplot", ("left", "right", "home", "end", "up", "down", "select"),
                         ids={"up": "series_up", "down": "series_down", "select": "open"},
                         descriptions={"left": "Previous layer", "right": "Next layer", "home": "First layer",
                                       "end": "Last layer", "up": "Previous series", "down": "Next series",
                                       "select": "Open"}),
    ]

    class PointSelected(cursor_grid.CursorMoved):
        """The marker moved to point `index` (`col`) of `series` (x = `x`, y = `value`)."""

        SENDER = "plot"
        FIELDS = ("series", "index", "x", "value")
        plot: LinePlot
        series: str
        index: int
        x: float
        value: float

        def cell(self) -> tuple[int, int]:
            """Row of `series` among the plot's series, column `index`."""
            names = self.plot._names
            return (names.index(self.series) if self.series in names else 0), self.index

    class PointOpened(PointSelected, cursor_grid.CellSelected):
        """Enter on the marker: open what the point stands for (e.g. that layer's tensor)."""

    def __init__(
        self,
        series: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        *,
        x: Sequence[float] | None = None,
        title: str = "",
        xlabel: str = "layer",
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the plot.

        Args:
            series: Name → values, all of one length (NaN points are skipped).
            x: x value of each point (default 0..n-1: layer indices; integers label best).
            title: Shown on the header line (e.g. "std across layers").
            xlabel: Name of the x axis in the header ("layer").
        """
        super().__init__(**options)
        self._names: list[str] = []
        self._values: list[np.ndarray] = []
        self._x = np.zeros(0)
        self._title = title
        self._xlabel = xlabel
        self._series = 0
        self._index = 0
        if series is not None:
            self._store(series, x)

    def compose(self) -> ComposeResult:
        """Header (title + selected point), legend, and the plot."""
        yield Static(self._header_text(), classes="lineplot--header")
        yield Static(self._legend_text(), classes="lineplot--legend")
        yield PlotCanvas(self._build_spec, empty_text="no series")

    # ------------------------------------------------------------------ data

    def _store(self, series: Mapping[str, Sequence[float] | np.ndarray], x: Sequence[float] | None) -> None:
        names = list(series)
        values = [np.asarray(series[name], dtype=np.float64).ravel() for name in names]
        lengths = {v.size for v in values}
        if len(lengths) > 1:
            raise ValueError(f"all series must have one length, got {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        x_values = np.arange(n, dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)
        if x_values.size != n:
            raise ValueError(f"{x_values.size} x values for {n} points")
        self._names, self._values, self._x = names, values, x_values
        self._series = min(self._series, max(0, len(names) - 1))
        self._index = min(self._index, max(0, n - 1))

    def set_series(
        self,
        series: Mapping[str, Sequence[float] | np.ndarray],
        *,
        x: Sequence[float] | None = None,
        title: str | None = None,
    ) -> None:
        """Replace all series; the marker stays on the same index and series position if valid."""
        self._store(series, x)
        if title is not None:
            self._title = title
        self._redraw()

    @property
    def selected(self) -> tuple[str, int] | None:
        """`(series name, point index)` of the marker, or None without data."""
        if not self._names or self._x.size == 0:
            return None
        return self._names[self._series], self._index

    def select(self, series: str | int, index: int) -> None:
        """Put the marker on a point (index clamped; negative counts from the end)."""
        if not self._names or self._x.size == 0:
            return
        s = self._names.index(series) if isinstance(series, str) else series
        self._series = max(0, min(len(self._names) - 1, s))
        n = self._x.size
        self._index = max(0, min(n - 1, index if index >= 0 else n + index))
        self._redraw()
        self._post(self.PointSelected)

    # --------------------------------------------------------------- actions

    # the CursorGrid hooks: rows are the series (up/down wrap around), columns the points
    def grid_size(self) -> tuple[int, int]:
        return (len(self._names), int(self._x.size)) if self.selected is not None else (0, 0)

    @property
    def cursor_cell(self) -> tuple[int, int]:
        return self._series, self._index

    def _place_cursor(self, row: int, col: int) -> None:
        self.select(row, col)

    def step_cursor(self, d_row: int, d_col: int) -> None:
        if d_row and self.selected is not None:
            self.select((self._series + d_row) % len(self._names), self._index)
        else:
            super().step_cursor(0, d_col)

    def _post_selected(self) -> None:
        self._post(self.PointOpened)

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        return None  # plotext draws the points: no mouse mapping

    def _post(self, kind: type[PointSelected]) -> None:
        selected = self.selected
        if selected is not None:
            name, index = selected
            value = float(self._values[self._series][index])
            self.post_message(kind(self, name, index, float(self._x[index]), value))

    # ------------------------------------------------------------- drawing

    def _redraw(self) -> None:
        if self.is_mounted:
            self.query_one(".lineplot--header", Static).update(self._header_text())
            self.query_one(".lineplot--legend", Static).update(self._legend_text())
            self.query_one(PlotCanvas).invalidate()

    def _header_text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self._title:
            text.append(self._title, style="bold")
            text.append("  ")
        selected = self.selected
        if selected is not None:
            name, index = selected
            x = self._x[index]
            x_text = str(int(x)) if float(x).is_integer() else format_value(float(x))
            value = format_value(float(self._values[self._series][index]))
            text.append(f"{name} · {self._xlabel} {x_text}: {value}", style="dim")
        return text

    def _legend_text(self) -> Text:
        text = Text()
        for i, name in enumerate(self._names):
            r, g, b = SERIES_COLORS[i % len(SERIES_COLORS)]
            style = f"rgb({r},{g},{b})" + (" bold reverse" if i == self._series else "")
            text.append("━ " + name, style=style)
            text.append("  ")
        return text

    def _build_spec(self, width: int, height: int) -> PlotSpec | None:
        if not self._names or self._x.size == 0:
            return None
        plot_width = max(4, width - _Y_AXIS_COLUMNS)
        lines = []
        for i, (name, values) in enumerate(zip(self._names, self._values)):
            keep = downsample_series(values, 2 * plot_width)
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            lines.append(LineSeries(name, tuple(self._x[keep].tolist()), tuple(values[keep].tolist()), color))
        finite = np.concatenate([v[np.isfinite(v)] for v in self._values])
        if finite.size == 0:
            return None
        lo, hi = float(finite.min()), float(finite.max())
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.05
        ylim = (lo - pad, hi + pad)
        ystep = (hi - lo) / 4
        yticks = tuple((lo + k * ystep, format_tick(lo + k * ystep)) for k in range(5))
        x0, x1 = float(self._x.min()), float(self._x.max())
        span = max(1, int(math.ceil(x1 - x0)))
        step = nice_step(span, max(1, plot_width // 5))
        first = math.ceil(x0 / step) * step
        xticks = tuple((float(t), str(int(t))) for t in np.arange(first, x1 + 0.5, step))
        points: tuple[PlotPoint, ...] = ()
        vline = None
        selected = self.selected
        if selected is not None:
            value = float(self._values[self._series][self._index])
            vline = float(self._x[self._index])
            if math.isfinite(value):
                points = (PlotPoint(vline, value, SERIES_COLORS[self._series % len(SERIES_COLORS)]),)
        return PlotSpec(
            lines=tuple(lines), points=points, vline=vline, xticks=xticks, yticks=yticks,
            xlim=(x0 - 0.5, x1 + 0.5), ylim=ylim,
        )  # fmt: skip


__all__ = ["LinePlot"]
