"""Histogram of a tensor's values from bins the engine computed (`edges`, `counts`).

Why precomputed bins: binning a million values in plotext takes ~140 ms per redraw on the UI
thread; the engine bins once (contracts: "Tensor statistics" → `histogram`). This widget only
draws: bars at integer positions with explicit tick labels (float positions print raw floats),
adjacent bins merged exactly (counts summed) when there are more bins than columns, and an
optional log-count view computed here as log10(count + 1) (plotext's own log scale can raise
"math domain error" when rebuilt). "Clip outliers" is the parent's job: this widget flips the
flag, posts `ClipToggled`, and the parent asks the engine for bins over [p1, p99] and calls
`set_bins(..., subtitle=...)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Static
from typing_extensions import Unpack

from tui.components.cursor_grid import WidgetMessage
from tui.components.options import WidgetOptions, assign_given
from tui.components.plotting import SERIES_COLORS, PlotCanvas, PlotSpec, plot_columns
from tui.components.reduce import merge_bins
from tui.components.theme import format_tick, format_value
from tui.css import widget_css


class _Flag:
    """A bool property kept in the attribute `attr`; setting it calls the method `redraw` (the histogram's two
    toggles: the log scale redraws the bars, the clip flag only the header)."""

    def __init__(self, attr: str, redraw: str) -> None:
        self.attr = attr
        self.redraw = redraw

    def __get__(self, widget: object, owner: type | None = None) -> bool:
        if widget is None:  # looked up on the class
            return self  # type: ignore[return-value]
        return bool(getattr(widget, self.attr))

    def __set__(self, widget: object, value: bool) -> None:
        setattr(widget, self.attr, bool(value))
        getattr(widget, self.redraw)()


class Histogram(Widget, can_focus=True):
    """Bars from precomputed histogram bins, with a log-count toggle and a clip toggle."""

    DEFAULT_CSS = widget_css(__file__)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log counts", id="histogram.toggle_log"),
        Binding("c", "toggle_clip", "Clip outliers", id="histogram.toggle_clip"),
    ]

    class ClipToggled(WidgetMessage):
        """The user asked for (or no longer wants) outliers clipped: rebin over [p1, p99]."""

        SENDER = "histogram"
        FIELDS = ("clip",)
        histogram: Histogram
        clip: bool

    class LogToggled(WidgetMessage):
        """The count axis switched between linear and log10(count + 1)."""

        SENDER = "histogram"
        FIELDS = ("log",)
        histogram: Histogram
        log: bool

    def __init__(
        self,
        edges: Sequence[float] | np.ndarray | None = None,
        counts: Sequence[int] | np.ndarray | None = None,
        *,
        title: str = "",
        subtitle: str = "",
        log_counts: bool = False,
        clip_outliers: bool = False,
        max_bars: int | None = None,
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the histogram.

        Args:
            edges: N+1 increasing bin edges.
            counts: N counts.
            title: Shown bold on the header line (e.g. the tensor name).
            subtitle: Shown after the title (e.g. "clipped to [p1, p99]: 1,234 values outside").
            log_counts: Start with log10(count + 1) heights.
            clip_outliers: Initial state of the clip flag (only displayed; the parent rebins).
            max_bars: Most bars to draw (default: one per plot column).
        """
        super().__init__(**options)
        self._edges = np.zeros(1)
        self._counts = np.zeros(0, dtype=np.int64)
        self._title = title
        self._subtitle = subtitle
        self._log = log_counts
        self._clip = clip_outliers
        self._max_bars = max_bars
        self.shown_edges = np.zeros(1)
        """Edges of the bars drawn last (after merging)."""
        self.shown_counts = np.zeros(0, dtype=np.int64)
        """Counts of the bars drawn last (after merging)."""
        if edges is not None and counts is not None:
            self._store(edges, counts)

    def compose(self) -> ComposeResult:
        """A header line and the plot."""
        yield Static(self._header_text(), classes="histogram--header")
        yield PlotCanvas(self._build_spec, empty_text="no histogram")

    # ------------------------------------------------------------------ data

    def _store(self, edges: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray) -> None:
        edges_array = np.asarray(edges, dtype=np.float64)
        counts_array = np.asarray(counts)
        if edges_array.ndim != 1 or counts_array.ndim != 1 or edges_array.size != counts_array.size + 1:
            raise ValueError(f"need N+1 edges for N counts, got {edges_array.size} and {counts_array.size}")
        if counts_array.size and np.any(np.diff(edges_array) < 0):
            raise ValueError("edges must be increasing")
        self._edges, self._counts = edges_array, counts_array

    def set_bins(
        self,
        edges: Sequence[float] | np.ndarray,
        counts: Sequence[int] | np.ndarray,
        *,
        title: str | None = None,
        subtitle: str | None = None,
        clip_outliers: bool | None = None,
    ) -> None:
        """Draw new bins (e.g. the engine's answer after `ClipToggled`)."""
        self._store(edges, counts)
        assign_given(self, title=title, subtitle=subtitle, clip=clip_outliers)
        self._redraw()

    #: Whether heights are log10(count + 1).
    log_counts = _Flag("_log", "_redraw")
    #: Whether the parent was asked to clip outliers (shown in the header).
    clip_outliers = _Flag("_clip", "_update_header")

    def action_toggle_log(self) -> None:
        """Switch linear / log10(count + 1) heights."""
        self.log_counts = not self._log
        self.post_message(self.LogToggled(self, self._log))

    def action_toggle_clip(self) -> None:
        """Flip the clip flag and ask the parent for other bins."""
        self.clip_outliers = not self._clip
        self.post_message(self.ClipToggled(self, self._clip))

    # ------------------------------------------------------------- drawing

    def _redraw(self) -> None:
        if self.is_mounted:
            self._update_header()
            self.query_one(PlotCanvas).invalidate()

    def _update_header(self) -> None:
        if self.is_mounted:
            self.query_one(".histogram--header", Static).update(self._header_text())

    def _header_text(self) -> Text:
        """Title, subtitle, total and range, and the two toggles with their keys."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if self._title:
            text.append(self._title, style="bold")
            text.append("  ")
        if self._subtitle:
            text.append(self._subtitle)
            text.append("  ")
        if self._counts.size:
            total = int(np.sum(self._counts))
            text.append(
                f"n={format_tick(total)} · [{format_value(self._edges[0])}, {format_value(self._edges[-1])}]  ",
                style="dim",
            )
        text.append("l", style="bold")
        text.append(" log " + ("on" if self._log else "off") + "  ", style="dim")
        text.append("c", style="bold")
        text.append(" clip p1–p99 " + ("on" if self._clip else "off"), style="dim")
        return text

    def _build_spec(self, width: int, height: int) -> PlotSpec | None:
        """Merge bins to fit, then give every bar the same whole number of columns.

        The plot area is the canvas minus the y tick labels, which depend on the merged peak,
        so the merge is done twice at most.
        """
        if self._counts.size == 0:
            return None
        yticks: tuple[tuple[float, str], ...] = ((0.0, "00000"),)
        for _ in range(2):
            columns = plot_columns(width, yticks)
            max_bars = min(self._max_bars or columns, columns)
            edges, counts = merge_bins(self._edges, self._counts, max_bars)
            heights, new_yticks, ylim = self._heights(counts)
            if plot_columns(width, new_yticks) == columns:
                yticks = new_yticks
                break
            yticks = new_yticks
        columns = plot_columns(width, yticks)
        self.shown_edges, self.shown_counts = edges, counts
        n = counts.size
        slots = max(2, columns // 9)  # one x label per ~9 columns
        stride = max(1, math.ceil(n / slots))
        centres = (edges[:-1] + edges[1:]) / 2
        xticks = tuple((float(i), format_tick(float(centres[i]))) for i in range(0, n, stride))
        return PlotSpec(
            bars=tuple(heights.tolist()), bar_columns=max(1, columns // n), bar_color=SERIES_COLORS[0],
            xticks=xticks, yticks=yticks, ylim=ylim,
        )  # fmt: skip

    def _heights(self, counts: np.ndarray) -> tuple[np.ndarray, tuple[tuple[float, str], ...], tuple[float, float]]:
        """Bar heights, y ticks and y range: counts, or log10(count + 1) with ticks at 10^k."""
        if self._log:
            heights = np.log10(counts.astype(np.float64) + 1.0)
            top = max(1, math.ceil(float(heights.max())))
            yticks = tuple((float(k), "0" if k == 0 else format_tick(10.0**k)) for k in range(top + 1))
            return heights, yticks, (0.0, float(top))
        heights = counts.astype(np.float64)
        peak = float(heights.max()) or 1.0
        step = _nice_float_step(peak / 4)
        yticks = tuple((k * step, format_tick(k * step)) for k in range(int(peak // step) + 1))
        return heights, yticks, (0.0, peak * 1.05)


def _nice_float_step(raw: float) -> float:
    """1, 2 or 5 × 10^k, the smallest ≥ `raw` (tick spacing for counts)."""
    if raw <= 0:
        return 1.0
    exponent = math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        step = mult * 10.0**exponent
        if step >= raw:
            return step
    return 10.0 ** (exponent + 1)


__all__ = ["Histogram"]
