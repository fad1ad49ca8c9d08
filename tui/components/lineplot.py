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
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from tui.components.plotting import SERIES_COLORS, LineSeries, PlotCanvas, PlotPoint, PlotSpec
from tui.components.reduce import downsample_series
from tui.components.theme import format_tick, format_value, nice_step

_Y_AXIS_COLUMNS = 10


class LinePlot(Widget, can_focus=True):
    """Several series over layers with a movable marker on one selected point."""

    DEFAULT_CSS = """
    LinePlot {
        width: 1fr;
        height: 1fr;
        min-height: 8;
        layout: vertical;
    }
    LinePlot > .lineplot--header { height: 1; width: 1fr; }
    LinePlot > .lineplot--legend { height: auto; max-height: 2; width: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "move(-1)", "Previous layer", show=False, id="lineplot.left"),
        Binding("right,l", "move(1)", "Next layer", show=False, id="lineplot.right"),
        Binding("home", "move_to(0)", "First layer", show=False, id="lineplot.home"),
        Binding("end", "move_to(-1)", "Last layer", show=False, id="lineplot.end"),
        Binding("up,k", "series(-1)", "Previous series", show=False, id="lineplot.series_up"),
        Binding("down,j", "series(1)", "Next series", show=False, id="lineplot.series_down"),
        Binding("enter", "open", "Open", show=False, id="lineplot.open"),
    ]

    class PointSelected(Message):
        """The marker moved to point `index` of `series` (x = `x`, y = `value`)."""

        def __init__(self, plot: LinePlot, series: str, index: int, x: float, value: float) -> None:
            super().__init__()
            self.plot = plot
            self.series = series
            self.index = index
            self.x = x
            self.value = value

        @property
        def control(self) -> LinePlot:
            """The sender."""
            return self.plot

    class PointOpened(PointSelected):
        """Enter on the marker: open what the point stands for (e.g. that layer's tensor)."""

    def __init__(
        self,
        series: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        *,
        x: Sequence[float] | None = None,
        title: str = "",
        xlabel: str = "layer",
        name: str | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """Create the plot.

        Args:
            series: Name → values, all of one length (NaN points are skipped).
            x: x value of each point (default 0..n-1: layer indices; integers label best).
            title: Shown on the header line (e.g. "std across layers").
            xlabel: Name of the x axis in the header ("layer").
        """
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
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

    def action_move(self, delta: int) -> None:
        """Move the marker `delta` points along the selected series."""
        if self.selected is not None:
            self.select(self._series, max(0, self._index + delta))

    def action_move_to(self, index: int) -> None:
        """Move the marker to a point (-1: last)."""
        if self.selected is not None:
            self.select(self._series, index)

    def action_series(self, delta: int) -> None:
        """Select the previous/next series (the marker keeps its index)."""
        if self.selected is not None:
            self.select((self._series + delta) % len(self._names), self._index)

    def action_open(self) -> None:
        """Post `PointOpened` for the marker."""
        self._post(self.PointOpened)

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
