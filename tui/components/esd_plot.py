"""The empirical spectral density (ESD) of a weight matrix on log-log axes, from the engine's histogram of
log10 λ: the density of each bin, the fitted power-law tail as a line, x_min as a point and the
Marchenko–Pastur bulk edge as a vertical line.

Why log-log: a power-law tail p(λ) ∝ λ^(−α) is a straight line of slope −α there, so the fit can be judged by
eye against the bars it was fitted to; everything right of the MP edge is what a random matrix of the same
shape and scale would not have. The density of a bin of width Δ in log10 λ is count / (N · ln10 · Δ · λ),
with λ the bin's geometric centre and N the number of positive eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from tui.components.plotting import SERIES_COLORS, LineSeries, PlotCanvas, PlotPoint, PlotSpec
from tui.css import widget_css

ESD_COLOR = SERIES_COLORS[0]
FIT_COLOR = SERIES_COLORS[2]
MP_COLOR = (150, 150, 150)


def esd_density(log10_edges: list[float], counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(log10 λ at bin centres, log10 density) for the bins with a count (empty bins have no log)."""
    edges = np.asarray(log10_edges, dtype=np.float64)
    counts_a = np.asarray(counts, dtype=np.float64)
    if counts_a.size == 0 or counts_a.sum() == 0:
        return np.zeros(0), np.zeros(0)
    centres = (edges[:-1] + edges[1:]) / 2
    width = np.diff(edges)
    keep = counts_a > 0
    density = counts_a[keep] / (counts_a.sum() * math.log(10) * width[keep] * 10.0 ** centres[keep])
    return centres[keep], np.log10(density)


def fit_line(spectrum: dict[str, Any], x_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The fitted tail p(λ) = (num_tail/N)·(α−1)/x_min·(λ/x_min)^(−α) from x_min to `x_hi` (log10 units)."""
    fit = spectrum.get("powerlaw")
    total = sum(spectrum["esd_histogram"]["counts"])
    if not fit or not total or fit["xmin"] <= 0:
        return np.zeros(0), np.zeros(0)
    lo = math.log10(fit["xmin"])
    xs = np.linspace(lo, max(lo, x_hi), 24)
    share = fit["num_tail"] / total
    ys = math.log10(share * (fit["alpha"] - 1) / fit["xmin"]) - fit["alpha"] * (xs - lo)
    return xs, ys


class EsdPlot(Widget):
    """A header line (the legend) and the log-log plot of one matrix's ESD."""

    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spectrum: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="esd--header")
        yield PlotCanvas(self._build_spec, empty_text="no eigenvalues to draw")

    def set_spectrum(self, spectrum: dict[str, Any] | None) -> None:
        self.spectrum = spectrum
        if self.is_mounted:
            self.query_one(".esd--header", Static).update(self.header())
            self.query_one(PlotCanvas).invalidate()

    def header(self) -> str:
        s = self.spectrum
        if not s:
            return ""
        parts = [f"[b]ESD[/b] [{_rgb(ESD_COLOR)}]density of λ = σ²[/], log-log",
                 f"[{_rgb(FIT_COLOR)}]━ power-law fit, ◆ x_min[/]" if s.get("powerlaw") else "no power-law fit",
                 f"[{_rgb(MP_COLOR)}]│ Marchenko–Pastur edge[/]"]
        return "  ".join(parts)

    def _build_spec(self, width: int, height: int) -> PlotSpec | None:
        s = self.spectrum
        if not s:
            return None
        hist = s["esd_histogram"]
        xs, ys = esd_density(hist["log10_edges"], hist["counts"])
        if not xs.size:
            return None
        edge = math.log10(s["mp_bulk_edge"]) if s.get("mp_bulk_edge", 0) > 0 else None
        x_lo, x_hi = float(hist["log10_edges"][0]), float(hist["log10_edges"][-1])
        lines = [LineSeries("ESD", tuple(xs.tolist()), tuple(ys.tolist()), ESD_COLOR)]
        fx, fy = fit_line(s, x_hi)
        points = []
        if fx.size:
            lines.append(LineSeries("power-law fit", tuple(fx.tolist()), tuple(fy.tolist()), FIT_COLOR))
            points.append(PlotPoint(float(fx[0]), float(fy[0]), FIT_COLOR, "◆"))
        y_all = np.concatenate([ys, fy]) if fy.size else ys
        y_lo, y_hi = math.floor(float(y_all.min())), math.ceil(float(y_all.max()))
        y_lo = max(y_lo, y_hi - 12)  # a fit line far below the bars would squash them
        lo = min(x_lo, edge) if edge is not None else x_lo
        hi = max(x_hi, edge) if edge is not None else x_hi
        pad = 0.02 * (hi - lo or 1)
        return PlotSpec(lines=tuple(lines), points=tuple(points), vline=edge, vline_color=MP_COLOR,
                        xticks=_ticks(lo, hi, max(2, width // 10)), yticks=_ticks(y_lo, y_hi, max(2, height // 3)),
                        xlim=(lo - pad, hi + pad), ylim=(float(y_lo), float(y_hi)), xlabel="λ (log scale)")


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def _ticks(lo: float, hi: float, slots: int) -> tuple[tuple[float, str], ...]:
    """Ticks at multiples of a 'nice' step of log10 units, labelled with the power of ten."""
    span = max(hi - lo, 1e-9)
    step = next(s for s in (0.25, 0.5, 1, 2, 5, 10, 20) if span / s <= slots)
    first = math.ceil(lo / step) * step
    out = []
    x = first
    while x <= hi + 1e-9:
        out.append((float(x), f"1e{x:g}" if float(x).is_integer() else f"{x:g}"))
        x += step
    return tuple(out)


__all__ = ["EsdPlot", "esd_density", "fit_line"]
