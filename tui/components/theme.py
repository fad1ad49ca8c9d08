"""Colour ramps and small text helpers shared by the drawing widgets.

Why a module of its own: every heat-coloured widget (heatmap, small multiples, heat strip, logit-lens
grid) must map values to the *same* quantised colours so that a value looks the same everywhere, and
must cache one Rich `Style` per colour pair so that drawing a line costs a dict lookup per run of
equal cells instead of building styles. Colours are Rich truecolor `Color`s: Rich downgrades them to
the 256- or 16-colour palette of the terminal when it writes them, so nothing here depends on the
terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.color import Color as RichColor
from rich.style import Style
from textual.color import Color, Gradient

RampKind = Literal["sequential", "diverging"]

#: Viridis (perceptually uniform, readable in 256 colours, its low end is not the terminal's black).
VIRIDIS_STOPS: tuple[str, ...] = (
    "#440154", "#482878", "#3e4989", "#31688e", "#26828e",
    "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725",
)  # fmt: skip
#: ColorBrewer RdBu reversed: negative = blue, 0 = near white, positive = red.
RDBU_STOPS: tuple[str, ...] = (
    "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
    "#fddbc7", "#f4a582", "#d6604d", "#b2182b",
)  # fmt: skip
#: A diverging ramp whose centre is dark: near-zero weights fade, outliers glow (dark terminals).
DARK_DIVERGING_STOPS: tuple[str, ...] = ("#4fa3ff", "#1d4f8c", "#1c1c1c", "#8c2a1d", "#ff6a4f")

#: Cells with no value (NaN / ±inf, e.g. the causal mask above the diagonal).
MASKED_COLOR = "#3a3a3a"

#: Number of quantised colours per ramp: more is invisible in a terminal, fewer shows banding.
DEFAULT_LEVELS = 64


@dataclass(frozen=True)
class Ramp:
    """A quantised colour ramp plus the extra colours a heat widget needs.

    Indices `0 .. levels-1` are ramp colours; `masked`, `cursor` and `empty` are the extra indices
    used for masked cells, the cursor and "no pixel here" (drawn with the widget background).
    """

    kind: RampKind
    colors: tuple[RichColor, ...]
    masked_color: RichColor
    cursor_color: RichColor

    @property
    def levels(self) -> int:
        """How many ramp colours there are."""
        return len(self.colors)

    @property
    def masked(self) -> int:
        """Index of the masked colour."""
        return len(self.colors)

    @property
    def cursor(self) -> int:
        """Index of the cursor colour."""
        return len(self.colors) + 1

    @property
    def empty(self) -> int:
        """Index meaning "no pixel": drawn with the widget's own background."""
        return len(self.colors) + 2

    def color(self, index: int) -> RichColor | None:
        """The Rich colour of an index (None for `empty`)."""
        if index < len(self.colors):
            return self.colors[index]
        if index == self.masked:
            return self.masked_color
        if index == self.cursor:
            return self.cursor_color
        return None

    def limits(self, values: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[float, float]:
        """Value range of the ramp: explicit limits win; diverging ramps are symmetric around 0."""
        finite = values[np.isfinite(values)] if values.size else values
        if self.kind == "diverging":
            if vmin is not None or vmax is not None:
                bound = max(abs(vmin or 0.0), abs(vmax or 0.0))
            else:
                bound = float(np.max(np.abs(finite))) if finite.size else 1.0
            bound = bound if bound > 0 else 1.0
            return -bound, bound
        lo = float(np.min(finite)) if vmin is None and finite.size else (vmin if vmin is not None else 0.0)
        hi = float(np.max(finite)) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
        if not hi > lo:
            hi = lo + 1.0
        return lo, hi

    def quantise(self, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """Map values to ramp indices (int16); NaN/±inf map to `masked`."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", over="ignore"):
            norm = (np.where(finite, values, lo) - lo) / (hi - lo)
        idx = np.rint(np.clip(norm, 0.0, 1.0) * (self.levels - 1)).astype(np.int16)
        idx[~finite] = self.masked
        return idx


def make_ramp(
    stops: tuple[str, ...],
    kind: RampKind,
    *,
    levels: int = DEFAULT_LEVELS,
    masked: str = MASKED_COLOR,
    cursor: str = "#ff3df5",
) -> Ramp:
    """Build a quantised ramp from evenly spaced colour stops with `textual.color.Gradient`."""
    gradient = Gradient.from_colors(*stops, quality=max(levels, len(stops)))
    colors = tuple(gradient.get_rich_color(i / (levels - 1)) for i in range(levels))
    return Ramp(kind, colors, Color.parse(masked).rich_color, Color.parse(cursor).rich_color)


SEQUENTIAL = make_ramp(VIRIDIS_STOPS, "sequential")
"""For probabilities and other non-negative values (attention 0..1, statistics)."""
DIVERGING = make_ramp(RDBU_STOPS, "diverging", cursor="#00d75f")
"""For signed values centred at 0 (weights, differences)."""
DARK_DIVERGING = make_ramp(DARK_DIVERGING_STOPS, "diverging", masked="#5f5f5f", cursor="#ffd700")
"""Diverging with a dark centre: only large magnitudes stand out."""

RAMPS: dict[str, Ramp] = {"sequential": SEQUENTIAL, "diverging": DIVERGING, "dark-diverging": DARK_DIVERGING}


def get_ramp(ramp: Ramp | str) -> Ramp:
    """Accept a `Ramp` or one of the names in `RAMPS`."""
    if isinstance(ramp, Ramp):
        return ramp
    try:
        return RAMPS[ramp]
    except KeyError:
        raise ValueError(f"unknown ramp {ramp!r}; expected one of {sorted(RAMPS)}") from None


class HalfBlockStyles:
    """Cache of `base + Style(color=upper, bgcolor=lower)` per pair of ramp indices.

    Why: a heatmap line is drawn as runs of `▀` whose foreground is the upper pixel and background
    the lower one; building (and combining) a Rich `Style` per cell is the slow part of drawing,
    so each pair is built once. `base` is the widget's own style (its background shows where a
    half has no pixel); make a new cache when it changes (theme switch).
    """

    def __init__(self, ramp: Ramp, base: Style | None = None) -> None:
        self.ramp = ramp
        self.base = base or Style()
        self._cache: dict[tuple[int, int], Style] = {}

    def get(self, upper: int, lower: int) -> Style:
        """Style for a half-block cell whose upper half is `upper` and lower half `lower`."""
        key = (upper, lower)
        style = self._cache.get(key)
        if style is None:
            style = self.base + Style(color=self.ramp.color(upper), bgcolor=self.ramp.color(lower))
            self._cache[key] = style
        return style


def contrast_text(color: RichColor) -> RichColor:
    """Black or white, whichever reads better on `color` (WCAG relative luminance)."""
    r, g, b = color.get_truecolor()

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return RichColor.from_rgb(0, 0, 0) if lum > 0.22 else RichColor.from_rgb(255, 255, 255)


_VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "⏎", "\u00a0": "⍽", "\u200b": "⌴"}


def visible_piece(piece: str) -> str:
    """Make whitespace and control characters of a token piece visible ('·' space, '↵' newline).

    Why: token boundaries are the point of the token view and labels; " self" and "self" are
    different tokens and must look different.
    """
    if piece == "":
        return "∅"
    out = []
    for ch in piece:
        mapped = _VISIBLE.get(ch)
        if mapped is None and ord(ch) < 0x20:
            mapped = chr(0x2400 + ord(ch))  # Unicode "control pictures"
        out.append(mapped if mapped is not None else ch)
    return "".join(out)


def fit_cells(text: str, width: int, align: Literal["left", "right"] = "left", ellipsis: bool = True) -> str:
    """Truncate (with '…') or pad `text` to exactly `width` terminal cells (wide characters aware)."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        if ellipsis and width > 1:
            return set_cell_size(text, width - 1) + "…"
        return set_cell_size(text, width)
    pad = " " * (width - length)
    return pad + text if align == "right" else text + pad


def format_value(value: float | None) -> str:
    """Compact number for status lines: 4 significant digits, 'masked' for NaN/±inf."""
    if value is None or not np.isfinite(value):
        return "masked"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def format_tick(value: float) -> str:
    """Short axis-tick label (3 significant digits, SI suffixes for large counts)."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= factor:
            return f"{value / factor:.3g}{suffix}"
    if magnitude >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.1e}"


def nice_step(span: int, slots: int) -> int:
    """Smallest step in 1, 2, 5, 10, 20, 50, ... such that `span / step <= slots` (for ticks)."""
    slots = max(1, slots)
    step = 1
    while True:
        for mult in (1, 2, 5):
            if span / (step * mult) <= slots:
                return step * mult
        step *= 10
