"""The one module that imports textual-plotext / plotext.

Why: textual-plotext 1.0.1 (Nov 2024, unmaintained) imports plotext's private modules and breaks
with plotext 6, and `PlotextPlot.render()` rebuilds the whole plot on every refresh. Widgets of
ours describe *what* to draw as a plain, frozen `PlotSpec` (bars at integer positions, line
series, points, explicit tick labels) built for the current canvas size; `PlotCanvas` turns the
spec into plotext calls and caches the rendered text until the spec, the size or the theme
changes. Replacing the plotting backend means rewriting this module only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from typing_extensions import Unpack

from tui.components.options import WidgetOptions
from tui.css import widget_css


def _stable_no_duplicates(data):
    """plotext's `no_duplicates` (used to drop repeated points before drawing) goes through a `set`, so the
    order points are drawn in, and with it where bars and tick labels land, changed with PYTHONHASHSEED from
    run to run. The same, keeping the first-seen order: a plot of the same numbers is the same plot."""
    return list(dict.fromkeys(data))


def _make_plotext_stable() -> None:
    import plotext._utility as plotext_utility

    plotext_utility.no_duplicates = _stable_no_duplicates


_make_plotext_stable()

RGB = tuple[int, int, int]

#: Distinct series colours that read on dark and light themes (q, k, v, o, gate, up, down, ...).
SERIES_COLORS: tuple[RGB, ...] = (
    (0, 130, 200), (60, 180, 75), (230, 25, 75), (255, 225, 25), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (180, 225, 40), (250, 190, 212),
)  # fmt: skip


@dataclass(frozen=True)
class LineSeries:
    """One line: points `(x[i], y[i])` drawn with braille dots."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    color: RGB


@dataclass(frozen=True)
class PlotPoint:
    """A highlighted point (the selected layer) drawn as a marker character."""

    x: float
    y: float
    color: RGB
    marker: str = "●"


@dataclass(frozen=True)
class PlotSpec:
    """Everything one plot shows; built by the owning widget for a given canvas size.

    Tick positions should be integers (bar indices, layer numbers): plotext prints float
    positions as raw floats, so labels are always given explicitly.
    """

    bars: tuple[float, ...] = ()  # heights of bars 0..n-1, each exactly `bar_columns` columns wide
    bar_columns: int = 1
    bar_color: RGB = SERIES_COLORS[0]
    lines: tuple[LineSeries, ...] = ()
    points: tuple[PlotPoint, ...] = ()
    vline: float | None = None
    vline_color: RGB = (128, 128, 128)
    xticks: tuple[tuple[float, str], ...] = ()
    yticks: tuple[tuple[float, str], ...] = ()
    xlim: tuple[float, float] | None = None  # ignored with bars: the bar layout fixes x
    ylim: tuple[float, float] | None = None
    xlabel: str = ""
    ylabel: str = ""


def plot_columns(width: int, yticks: tuple[tuple[float, str], ...]) -> int:
    """Columns of plotext's plot area: the canvas minus the y tick labels and the two frame lines."""
    label_width = max((len(label) for _, label in yticks), default=0)
    return max(1, width - label_width - 2)


SpecBuilder = Callable[[int, int], "PlotSpec | None"]
MIN_WIDTH, MIN_HEIGHT = 16, 5  # below this plotext cannot lay out axes and ticks
"""Called with the canvas `(width, height)`; returns what to draw (None: nothing to draw)."""


class PlotCanvas(PlotextPlot):
    """A plotext canvas that draws a `PlotSpec` and caches the result.

    The owner calls `set_builder(fn)` once and `invalidate()` whenever its data changes; the
    builder is asked for a spec at the current size on the next render only.
    """

    DEFAULT_CSS = widget_css(__file__)

    can_focus = False

    def __init__(
        self,
        builder: SpecBuilder | None = None,
        *,
        empty_text: str = "no data",
        **options: Unpack[WidgetOptions],
    ) -> None:
        super().__init__(**options)
        self._builder = builder
        self._empty_text = empty_text
        self._version = 0
        self._cache_key: tuple[object, ...] | None = None
        self._cache: RenderResult | None = None
        self.last_spec: PlotSpec | None = None
        """The spec drawn last (for tests and for owners that need the drawn ticks)."""

    def set_builder(self, builder: SpecBuilder | None) -> None:
        """Set the function that builds the spec for a size."""
        self._builder = builder
        self.invalidate()

    def invalidate(self) -> None:
        """The data changed: rebuild the spec and the plot on the next render."""
        self._version += 1
        self.refresh()

    def render(self) -> RenderResult:
        """Build the plot from the spec (cached until data, size or theme change)."""
        width, height = self.size
        key = (self._version, width, height, self.app.theme, self.theme)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        if width < MIN_WIDTH or height < MIN_HEIGHT:  # plotext divides by the plot area: nothing to draw in
            self.last_spec = None
            result: RenderResult = Text("(too small to plot)", style="dim")
            self._cache_key, self._cache = key, result
            return result
        spec = self._builder(width, height) if self._builder is not None else None
        self.last_spec = spec
        if spec is None or not (spec.bars or spec.lines):
            result = Text(self._empty_text, style="dim")
        else:
            self._apply(spec)
            try:
                result = super().render()
            except (ZeroDivisionError, ValueError, IndexError):  # plotext's layout arithmetic at odd sizes
                result = Text("(the plot does not fit this size)", style="dim")
        self._cache_key, self._cache = key, result
        return result

    def _apply(self, spec: PlotSpec) -> None:
        plt = self.plt
        plt.clear_figure()
        if spec.bars:
            self._draw_bars(spec)
        for series in spec.lines:
            if series.x:
                plt.plot(list(series.x), list(series.y), color=series.color, marker="braille")
        if spec.vline is not None:
            plt.vertical_line(spec.vline, color=spec.vline_color)
        for point in spec.points:
            plt.scatter([point.x], [point.y], color=point.color, marker=point.marker)
        if spec.xticks:
            plt.xticks([p for p, _ in spec.xticks], [label for _, label in spec.xticks])
        if spec.yticks:
            plt.yticks([p for p, _ in spec.yticks], [label for _, label in spec.yticks])
        if spec.xlim is not None and not spec.bars:
            plt.xlim(*spec.xlim)
        if spec.ylim is not None:
            plt.ylim(*spec.ylim)
        if spec.xlabel:
            plt.xlabel(spec.xlabel)
        if spec.ylabel:
            plt.ylabel(spec.ylabel)

    def _draw_bars(self, spec: PlotSpec) -> None:
        """Bars `0..n-1`, each exactly `k = spec.bar_columns` plot columns, none overlapping.

        plotext maps x to column `floor(0.5 + (cols - 1) * (x - lo) / (hi - lo))` and draws a bar
        as a rectangle whose both edges are inclusive; it scales the bar width by the mean spacing
        of the positions and draws zero-height bars as blanks that erase their neighbours. So:
        zero bars are left out, the width is divided by the spacing, and with
        `lo = -(k - 1) / 2k`, `hi = lo + (cols - 1) / k`, `width = (k - 1) / k`, bar `i` covers
        columns `k·i .. k·i + k - 1` exactly (checked for k = 1..5 and several widths).
        """
        k = max(1, spec.bar_columns)
        cols = plot_columns(self.size.width, spec.yticks)
        drawn = [i for i, height in enumerate(spec.bars) if height > 0]
        lo = -(k - 1) / (2 * k)
        self.plt.xlim(lo, lo + (cols - 1) / k)
        if not drawn:
            return
        spacing = (drawn[-1] - drawn[0]) / (len(drawn) - 1) if len(drawn) > 1 else 1.0
        self.plt.bar(
            drawn, [spec.bars[i] for i in drawn], width=(k - 1) / k / spacing, marker="sd",
            color=spec.bar_color, reset_ticks=False,
        )  # fmt: skip


__all__ = ["LineSeries", "PlotCanvas", "PlotPoint", "PlotSpec", "SERIES_COLORS", "SpecBuilder", "plot_columns"]
