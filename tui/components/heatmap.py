"""A native heatmap widget: two matrix rows per terminal line with `▀` half blocks.

Why not plotext's `matrix_plot`: it leaves gaps when the matrix does not match the canvas, is
grayscale unless given RGB tuples and crashes on the NaN/-inf of masked attention scores. Here every
terminal cell is a `▀` whose foreground is the upper pixel's colour and background the lower pixel's,
so one cell holds two (roughly square) pixels and the mapping from matrix to cells is exact:

* a matrix that fits is drawn 1:1, or scaled up by an integer factor (each value → `s` columns ×
  `s` half-rows), never stretched with gaps;
* a matrix that does not fit is block-reduced (`fit="fit"`, default) by integer factors: "max" for
  sequential ramps (a single sharp attention peak stays visible), "absmax" for diverging ramps
  (outlier weights of either sign stay visible) or "mean" on request; masked cells are ignored in
  a block and a block with no visible cell stays masked;
* or shown 1:1 and cropped (`fit="crop"`): the view pans to follow the cursor.

Lines are drawn with the Line API (`render_line` → `Strip`) from quantised colour indices, with one
cached Rich `Style` per colour pair, so a 64×64 matrix draws in a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from tui.components.reduce import BlockReduce, as_masked_float, block_reduce
from tui.components.theme import HalfBlockStyles, Ramp, fit_cells, format_value, get_ramp, visible_piece

FitMode = Literal["fit", "crop"]

UPPER_HALF = "▀"
LOWER_HALF = "▄"


def fit_grid(
    rows: int,
    cols: int,
    avail_cols: int,
    avail_half_rows: int,
    *,
    max_scale: int = 4,
    cell: tuple[int, int] | None = None,
    keep_aspect: bool = True,
) -> tuple[int, int, int, int]:
    """Choose `(row_factor, col_factor, cols_per_pixel, half_rows_per_pixel)` for a matrix.

    Row/col factors > 1 mean blocks of the matrix become one pixel; a pixel is `cols_per_pixel`
    cells wide and `half_rows_per_pixel` half-lines tall. `cell` forces the pixel size; otherwise
    pixels are square (1 column × 1 half-row ≈ square on usual fonts), scaled up by the largest
    integer ≤ `max_scale` that still fits. With `keep_aspect`, both axes use the same block factor
    so that an attention diagonal stays a diagonal.
    """
    avail_cols, avail_half_rows = max(1, avail_cols), max(1, avail_half_rows)
    if cell is not None:
        sx, sy = max(1, cell[0]), max(1, cell[1])
    else:
        s = max(1, min(max_scale, avail_cols // max(1, cols), avail_half_rows // max(1, rows)))
        sx = sy = s
    fr = math.ceil(rows / max(1, avail_half_rows // sy))
    fc = math.ceil(cols / max(1, avail_cols // sx))
    if keep_aspect and cell is None:
        fr = fc = max(fr, fc)
    return fr, fc, sx, sy


def half_block_segments(upper: np.ndarray, lower: np.ndarray, repeat: int, styles: HalfBlockStyles) -> list[Segment]:
    """Segments for one terminal line: pixel colour indices of the upper and lower half-rows.

    Equal neighbouring cells are merged into one segment (run-length), so a line costs one
    segment per colour change, not per cell. `styles.ramp.empty` means "no pixel" (widget
    background): a cell with only a lower pixel is drawn as `▄`.
    """
    ramp = styles.ramp
    empty = ramp.empty
    if repeat > 1:
        upper = np.repeat(upper, repeat)
        lower = np.repeat(lower, repeat)
    key = upper.astype(np.int32) * 1024 + lower.astype(np.int32)
    if key.size == 0:
        return []
    starts = np.concatenate(([0], np.flatnonzero(key[1:] != key[:-1]) + 1, [key.size]))
    segments: list[Segment] = []
    append = segments.append
    for start, end in zip(starts[:-1].tolist(), starts[1:].tolist()):
        up, low = int(upper[start]), int(lower[start])
        length = end - start
        if up == empty and low == empty:
            append(Segment(" " * length, styles.base))
        elif up == empty:
            append(Segment(LOWER_HALF * length, styles.get(low, empty)))
        else:
            append(Segment(UPPER_HALF * length, styles.get(up, low)))
    return segments


@dataclass
class _Geometry:
    """Everything render_line needs for one widget size and one matrix (recomputed on change)."""

    width: int
    height: int
    grid_y: int  # first line of the grid (after title and header)
    gutter: int  # width of the row-label column, including its separating space
    grid_cols: int  # cells available for the grid
    grid_lines: int  # lines available for the grid
    row_factor: int
    col_factor: int
    sx: int  # cells per pixel
    sy: int  # half-rows per pixel
    pixels: np.ndarray  # block-reduced values (NaN = masked)
    levels: np.ndarray  # ramp indices of `pixels`
    vis_rows: int  # pixels visible vertically
    vis_cols: int  # pixels visible horizontally


class CellMessage(Message):
    """Base of the heatmap's cell messages: which cell (or block) and its value.

    `row`/`col` are matrix indices (the first cell of the block when the view is downsampled);
    `row_span`/`col_span` are the matrix ranges the pixel covers; `value` is what the pixel shows
    (NaN when masked).
    """

    def __init__(
        self,
        heatmap: Heatmap,
        row: int,
        col: int,
        value: float,
        row_span: range,
        col_span: range,
        row_label: str | None,
        col_label: str | None,
    ) -> None:
        super().__init__()
        self.heatmap = heatmap
        self.row = row
        self.col = col
        self.value = value
        self.row_span = row_span
        self.col_span = col_span
        self.row_label = row_label
        self.col_label = col_label

    @property
    def control(self) -> Heatmap:
        """The heatmap that sent the message (for `@on(..., "#id")`)."""
        return self.heatmap

    @property
    def masked(self) -> bool:
        """True when the cell has no value (NaN/-inf in the matrix)."""
        return not math.isfinite(self.value)


class Heatmap(Widget, can_focus=True):
    """A matrix drawn as coloured half blocks, with labels, a title line and a cursor.

    Data goes in with `set_matrix` (or the constructor) as anything numpy can turn into a 2-D float
    array; NaN/±inf cells are drawn in the ramp's "masked" colour. The widget never changes the
    data except for display-only block reduction.
    """

    DEFAULT_CSS = """
    Heatmap {
        width: 1fr;
        height: 1fr;
        min-height: 3;
    }
    Heatmap > .heatmap--title { text-style: bold; }
    Heatmap:focus > .heatmap--title { color: $accent; }
    Heatmap > .heatmap--status { color: $text-muted; }
    Heatmap > .heatmap--label { color: $text-muted; }
    Heatmap > .heatmap--label-cursor { color: $text; text-style: bold reverse; }
    Heatmap > .heatmap--tick { color: $text-muted; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "heatmap--title",
        "heatmap--status",
        "heatmap--label",
        "heatmap--label-cursor",
        "heatmap--tick",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="heatmap.cursor_up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="heatmap.cursor_down"),
        Binding("left,h", "cursor_left", "Left", show=False, id="heatmap.cursor_left"),
        Binding("right,l", "cursor_right", "Right", show=False, id="heatmap.cursor_right"),
        Binding("home", "cursor_home", "First column", show=False, id="heatmap.cursor_home"),
        Binding("end", "cursor_end", "Last column", show=False, id="heatmap.cursor_end"),
        Binding("pageup", "page_up", "Page up", show=False, id="heatmap.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="heatmap.page_down"),
        Binding("enter", "select_cell", "Select", show=False, id="heatmap.select"),
    ]

    class CursorMoved(CellMessage):
        """The cursor moved (keys or mouse hover) or the matrix under it changed."""

    class CellSelected(CellMessage):
        """Enter was pressed or a cell was clicked."""

    def __init__(
        self,
        matrix: object | None = None,
        *,
        title: str = "",
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        row_axis: str = "row",
        col_axis: str = "col",
        ramp: Ramp | str = "sequential",
        vmin: float | None = None,
        vmax: float | None = None,
        reduce: BlockReduce | None = None,
        fit: FitMode = "fit",
        max_scale: int = 4,
        keep_aspect: bool = True,
        show_title: bool = True,
        show_status: bool = True,
        show_header: bool = True,
        show_row_labels: bool = True,
        label_width: int = 10,
        show_cursor: bool = True,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 (Textual's own parameter name)
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """Create a heatmap.

        Args:
            matrix: 2-D values (NaN/±inf = masked); None draws nothing until `set_matrix`.
            title: Shown on the title line, left.
            row_labels: One label per row (token pieces: whitespace is made visible).
            col_labels: One label per column; shown in the header when they fit, else indices.
            row_axis: Name of the rows in the status text (e.g. "query").
            col_axis: Name of the columns in the status text (e.g. "key").
            ramp: A `Ramp` or "sequential" (0..1 probabilities) / "diverging" (signed, centred at 0).
            vmin: Lower colour limit (default: data min; diverging ramps are symmetric).
            vmax: Upper colour limit (default: data max).
            reduce: Block reduction when downsampling; default "max" (sequential) / "absmax" (diverging).
            fit: "fit" downsamples to the widget; "crop" shows 1:1 and pans with the cursor.
            max_scale: Largest integer zoom for small matrices.
            keep_aspect: Use the same block factor on both axes.
            show_title: Draw the title/status line.
            show_status: Put the cursor's position and value at the right of the title line.
            show_header: Draw the column label / index line.
            show_row_labels: Draw the row label / index column.
            label_width: Widest row label, in cells.
            show_cursor: Draw a cursor and react to keys and mouse.
        """
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._ramp = get_ramp(ramp)
        self._half_blocks: HalfBlockStyles | None = None
        self._title = title
        self._row_axis = row_axis
        self._col_axis = col_axis
        self._vmin = vmin
        self._vmax = vmax
        self._reduce: BlockReduce | None = reduce
        self._fit: FitMode = fit
        self._max_scale = max_scale
        self._keep_aspect = keep_aspect
        self._cell: tuple[int, int] | None = None
        self.show_title = show_title
        self.show_status = show_status
        self.show_header = show_header
        self.show_row_labels = show_row_labels
        self.label_width = label_width
        self.show_cursor = show_cursor
        if not show_cursor:
            self.can_focus = False
        self._data: np.ndarray | None = None
        self._row_labels: list[str] | None = None
        self._col_labels: list[str] | None = None
        self._limits: tuple[float, float] = (0.0, 1.0)
        self._cursor = (0, 0)  # matrix coordinates
        self._origin = (0, 0)  # first visible pixel (crop mode)
        self._geometry: _Geometry | None = None
        self._lines: dict[int, Strip] = {}
        if matrix is not None:
            self._load(matrix, row_labels, col_labels)

    # ------------------------------------------------------------------ data

    @property
    def matrix(self) -> np.ndarray | None:
        """The current matrix (float64, masked cells as NaN)."""
        return self._data

    @property
    def ramp(self) -> Ramp:
        """The colour ramp in use."""
        return self._ramp

    @property
    def limits(self) -> tuple[float, float]:
        """The value range mapped onto the ramp."""
        return self._limits

    @property
    def reduce(self) -> BlockReduce:
        """The block reduction used when downsampling."""
        if self._reduce is not None:
            return self._reduce
        return "max" if self._ramp.kind == "sequential" else "absmax"

    @property
    def cursor(self) -> tuple[int, int]:
        """Cursor position in matrix coordinates (block start when downsampled)."""
        return self._cursor

    def _load(self, matrix: object, row_labels: Sequence[str] | None, col_labels: Sequence[str] | None) -> None:
        data = as_masked_float(matrix)
        rows, cols = data.shape
        if row_labels is not None and len(row_labels) != rows:
            raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
        if col_labels is not None and len(col_labels) != cols:
            raise ValueError(f"{len(col_labels)} column labels for {cols} columns")
        self._data = data
        self._row_labels = list(row_labels) if row_labels is not None else None
        self._col_labels = list(col_labels) if col_labels is not None else None
        self._limits = self._ramp.limits(data, self._vmin, self._vmax)
        row, col = self._cursor
        self._cursor = (min(row, max(0, rows - 1)), min(col, max(0, cols - 1)))

    def set_matrix(
        self,
        matrix: object,
        *,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        title: str | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> None:
        """Replace the matrix (and labels); keeps the cursor where possible and posts `CursorMoved`.

        `vmin`/`vmax` given here replace the constructor's; pass them again on each call to
        keep a fixed scale across updates (e.g. 0..1 for attention).
        """
        if title is not None:
            self._title = title
        if vmin is not None:
            self._vmin = vmin
        if vmax is not None:
            self._vmax = vmax
        self._load(matrix, row_labels, col_labels)
        self._invalidate()
        if self.is_mounted:
            self._post_cursor(self.CursorMoved)

    def set_ramp(self, ramp: Ramp | str) -> None:
        """Change the colour ramp (and the default block reduction with it)."""
        self._ramp = get_ramp(ramp)
        self._half_blocks = None
        if self._data is not None:
            self._limits = self._ramp.limits(self._data, self._vmin, self._vmax)
        self._invalidate()

    def clear(self) -> None:
        """Show no matrix."""
        self._data = None
        self._invalidate()

    # -------------------------------------------------------------- geometry

    def _invalidate(self) -> None:
        self._geometry = None
        self._lines.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        """CSS (theme, focus) changed: drop cached lines and styles, the old colours are baked in."""
        super().notify_style_update()
        self._lines.clear()
        self._half_blocks = None

    @property
    def _styles(self) -> HalfBlockStyles:
        """Half-block styles on top of the widget's own style (rebuilt after a style change)."""
        if self._half_blocks is None:
            self._half_blocks = HalfBlockStyles(self._ramp, self.rich_style)
        return self._half_blocks

    def on_resize(self, event: events.Resize) -> None:
        """Geometry depends on the size: recompute lazily."""
        self._invalidate()

    def _choose_cell(self, rows: int, cols: int, avail_cols: int, avail_half: int) -> tuple[int, int, int, int]:
        """Block factors and pixel size; subclasses (the heat strip) override this."""
        if self._fit == "crop":
            sx, sy = self._cell or (1, 1)
            return 1, 1, sx, sy
        return fit_grid(
            rows, cols, avail_cols, avail_half, max_scale=self._max_scale, cell=self._cell,
            keep_aspect=self._keep_aspect,
        )  # fmt: skip

    def _row_gutter_width(self, rows: int) -> int:
        if not self.show_row_labels:
            return 0
        if self._row_labels is not None:
            widest = max((cell_len(visible_piece(label)) for label in self._row_labels), default=1)
            return min(self.label_width, widest) + 1
        return len(str(max(0, rows - 1))) + 1

    def _get_geometry(self) -> _Geometry | None:
        if self._geometry is not None:
            return self._geometry
        if self._data is None:
            return None
        width, height = self.size
        rows, cols = self._data.shape
        title_lines = 1 if self.show_title else 0
        header_lines = 1 if self.show_header else 0
        gutter = self._row_gutter_width(rows)
        if gutter >= width - 1:
            gutter = 0
        grid_cols = max(1, width - gutter)
        grid_lines = max(1, height - title_lines - header_lines)
        fr, fc, sx, sy = self._choose_cell(rows, cols, grid_cols, 2 * grid_lines)
        pixels = block_reduce(self._data, fr, fc, self.reduce)
        levels = self._ramp.quantise(pixels, *self._limits)
        vis_rows = min(pixels.shape[0], max(1, (2 * grid_lines) // sy))
        vis_cols = min(pixels.shape[1], max(1, grid_cols // sx))
        self._geometry = _Geometry(
            width, height, title_lines + header_lines, gutter, grid_cols, grid_lines,
            fr, fc, sx, sy, pixels, levels, vis_rows, vis_cols,
        )  # fmt: skip
        self._clamp_origin()
        return self._geometry

    def _cursor_pixel(self, geo: _Geometry) -> tuple[int, int]:
        row, col = self._cursor
        return row // geo.row_factor, col // geo.col_factor

    def _clamp_origin(self) -> None:
        """Pan (crop mode) so that the cursor pixel is visible."""
        geo = self._geometry
        if geo is None:
            return
        pr, pc = self._cursor_pixel(geo)
        orow, ocol = self._origin
        orow = min(max(orow, pr - geo.vis_rows + 1), pr)
        ocol = min(max(ocol, pc - geo.vis_cols + 1), pc)
        orow = max(0, min(orow, geo.pixels.shape[0] - geo.vis_rows))
        ocol = max(0, min(ocol, geo.pixels.shape[1] - geo.vis_cols))
        self._origin = (orow, ocol)

    # ------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        """One line of the widget (title, header, or two pixel rows of the grid)."""
        strip = self._lines.get(y)
        if strip is None:
            # every segment carries a full style (the widget's base is folded into the cached
            # styles): Textual adds nothing to a Line-API widget's segments
            strip = self._render_line(y)
            self._lines[y] = strip
        return strip

    def _render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self._styles.base
        geo = self._get_geometry()
        if geo is None:
            if y == 0 and self.show_title and self._title:
                return Strip([Segment(fit_cells(self._title, width), self.get_component_rich_style("heatmap--title"))])
            return Strip.blank(width, base)
        if self.show_title and y == 0:
            return self._render_title(geo)
        if self.show_header and y == geo.grid_y - 1:
            return self._render_header(geo)
        grid_line = y - geo.grid_y
        if 0 <= grid_line < geo.grid_lines:
            return self._render_grid_line(geo, grid_line)
        return Strip.blank(width, base)

    def _status_text(self, geo: _Geometry) -> str:
        if not (self.show_status and self.show_cursor):
            return ""
        message = self._cell_message(self.CursorMoved, geo)
        row = self._span_text(message.row_span, message.row_label)
        col = self._span_text(message.col_span, message.col_label)
        return f"{self._row_axis} {row} → {self._col_axis} {col}: {format_value(message.value)}"

    @staticmethod
    def _span_text(span: range, label: str | None) -> str:
        text = f"{span.start}" if len(span) <= 1 else f"{span.start}-{span.stop - 1}"
        if label is not None and len(span) <= 1:
            text += f" '{visible_piece(label)}'"
        return text

    def _render_title(self, geo: _Geometry) -> Strip:
        width = self.size.width
        assert self._data is not None
        rows, cols = self._data.shape
        info = f"{rows}×{cols}"
        if geo.row_factor > 1 or geo.col_factor > 1:
            info += f" · {geo.row_factor}×{geo.col_factor} block {self.reduce}"
        elif self._fit == "crop" and (geo.vis_rows < rows or geo.vis_cols < cols):
            info += " · cropped"
        lo, hi = self._limits
        info += f" · [{format_value(lo)}, {format_value(hi)}]"
        title = f"{self._title}  " if self._title else ""
        status = self._status_text(geo)
        title_style = self.get_component_rich_style("heatmap--title")
        status_style = self.get_component_rich_style("heatmap--status")
        left = title + info
        room = width - (cell_len(status) + 2 if status else 0)
        if room < 12 and status:  # not enough room for both: the status is what changes
            return Strip([Segment(fit_cells(status, width), status_style)])
        left_text = fit_cells(left, max(0, room))
        segments = [Segment(left_text[: len(title)], title_style), Segment(left_text[len(title) :], status_style)]
        if status:
            segments.append(Segment(fit_cells(status, width - cell_len(left_text), align="right"), status_style))
        return Strip(segments).adjust_cell_length(width, self._styles.base)

    def _render_header(self, geo: _Geometry) -> Strip:
        width = self.size.width
        tick_style = self.get_component_rich_style("heatmap--tick")
        chars = [" "] * geo.grid_cols
        ocol = self._origin[1]
        if self._col_labels is not None and geo.col_factor == 1 and geo.sx >= 3:
            for i in range(geo.vis_cols):
                text = fit_cells(visible_piece(self._col_labels[ocol + i]), geo.sx - 1)
                x = i * geo.sx
                for j, ch in enumerate(text):
                    if x + j < geo.grid_cols:
                        chars[x + j] = ch
        else:
            assert self._data is not None
            cols = self._data.shape[1]
            digits = len(str(max(0, cols - 1))) + 1
            pixels_per_tick = math.ceil(digits / geo.sx)
            step = _nice_at_least(pixels_per_tick * geo.col_factor)
            last_end = -1
            for m in range(0, cols, step):
                x = (m // geo.col_factor - ocol) * geo.sx
                label = str(m)
                if x < 0 or x + len(label) > geo.grid_cols or x <= last_end:
                    continue
                chars[x : x + len(label)] = label
                last_end = x + len(label)
        text = "".join(chars)
        segments = [Segment(" " * geo.gutter, self._styles.base), Segment(text, tick_style)]
        return Strip(segments).adjust_cell_length(width, self._styles.base)

    def _row_label_for_line(self, geo: _Geometry, line: int) -> tuple[str, bool]:
        """Gutter text for a grid line, and whether it is the cursor's row.

        Only pixel rows that *start* on this line are labelled (a zoomed row spanning several
        lines is labelled once); with two rows per line the cursor's row wins, else the upper one.
        """
        orow = self._origin[0]
        top = orow + geo.vis_rows
        starting = [
            orow + half // geo.sy
            for half in (2 * line, 2 * line + 1)
            if half % geo.sy == 0 and orow + half // geo.sy < top
        ]
        width = geo.gutter - 1
        if not starting:
            return " " * width, False
        cursor_pr = self._cursor_pixel(geo)[0] if self.show_cursor else -1
        on_cursor = cursor_pr in starting
        pixel_row = cursor_pr if on_cursor else starting[0]
        row = pixel_row * geo.row_factor
        if self._row_labels is not None:
            return fit_cells(visible_piece(self._row_labels[row]), width, align="right"), on_cursor
        if on_cursor:
            return fit_cells(str(row), width, align="right"), True
        # plain indices: only at "nice" rows, at least every second line
        assert self._data is not None
        rows_per_line = 2 * geo.row_factor / geo.sy
        step = _nice_at_least(math.ceil(2 * rows_per_line))
        first = starting[0] * geo.row_factor
        last = (starting[-1] + 1) * geo.row_factor
        mark = -(-first // step) * step
        if mark < min(last, self._data.shape[0]):
            return fit_cells(str(mark), width, align="right"), False
        return " " * width, False

    def _render_grid_line(self, geo: _Geometry, line: int) -> Strip:
        width = self.size.width
        ramp = self._ramp
        orow, ocol = self._origin
        top = orow + geo.vis_rows
        pr0 = orow + (2 * line) // geo.sy
        pr1 = orow + (2 * line + 1) // geo.sy
        cols = slice(ocol, ocol + geo.vis_cols)
        empty_row = np.full(geo.vis_cols, ramp.empty, dtype=np.int16)
        upper = geo.levels[pr0, cols].copy() if pr0 < top else empty_row
        lower = geo.levels[pr1, cols].copy() if pr1 < top else empty_row.copy()
        if pr0 >= top:
            return Strip.blank(width, self._styles.base)
        if self.show_cursor:
            cr, cc = self._cursor_pixel(geo)
            if ocol <= cc < ocol + geo.vis_cols:
                if cr == pr0:
                    upper[cc - ocol] = ramp.cursor
                if cr == pr1 and pr1 < top:
                    lower[cc - ocol] = ramp.cursor
        segments: list[Segment] = []
        if geo.gutter:
            label, on_cursor = self._row_label_for_line(geo, line)
            style = self.get_component_rich_style("heatmap--label-cursor" if on_cursor else "heatmap--label")
            segments.append(Segment(label, style))
            segments.append(Segment(" ", self._styles.base))
        segments.extend(half_block_segments(upper, lower, geo.sx, self._styles))
        return Strip(segments).adjust_cell_length(width, self._styles.base)

    # --------------------------------------------------------------- cursor

    def _cell_message(self, kind: type[CellMessage], geo: _Geometry) -> CellMessage:
        assert self._data is not None
        rows, cols = self._data.shape
        pr, pc = self._cursor_pixel(geo)
        row_span = range(pr * geo.row_factor, min(rows, (pr + 1) * geo.row_factor))
        col_span = range(pc * geo.col_factor, min(cols, (pc + 1) * geo.col_factor))
        value = float(geo.pixels[pr, pc])
        row_label = self._row_labels[row_span.start] if self._row_labels is not None else None
        col_label = self._col_labels[col_span.start] if self._col_labels is not None else None
        return kind(self, row_span.start, col_span.start, value, row_span, col_span, row_label, col_label)

    def _post_cursor(self, kind: type[CellMessage]) -> None:
        geo = self._get_geometry()
        if geo is not None and self.show_cursor:
            self.post_message(self._cell_message(kind, geo))

    def move_cursor(self, row: int, col: int) -> None:
        """Put the cursor on a matrix cell (clamped); posts `CursorMoved` when it moved."""
        if self._data is None:
            return
        rows, cols = self._data.shape
        new = (max(0, min(rows - 1, row)), max(0, min(cols - 1, col)))
        geo = self._get_geometry()
        if geo is not None:  # snap to block starts so that a pixel has one position
            new = ((new[0] // geo.row_factor) * geo.row_factor, (new[1] // geo.col_factor) * geo.col_factor)
        if new == self._cursor:
            return
        self._cursor = new
        self._clamp_origin()
        self._lines.clear()
        self.refresh()
        self._post_cursor(self.CursorMoved)

    def _move_pixels(self, d_row: int, d_col: int) -> None:
        geo = self._get_geometry()
        if geo is None:
            return
        pr, pc = self._cursor_pixel(geo)
        pr = max(0, min(geo.pixels.shape[0] - 1, pr + d_row))
        pc = max(0, min(geo.pixels.shape[1] - 1, pc + d_col))
        self.move_cursor(pr * geo.row_factor, pc * geo.col_factor)

    def action_cursor_up(self) -> None:
        """Move the cursor one pixel (row or block) up."""
        self._move_pixels(-1, 0)

    def action_cursor_down(self) -> None:
        """Move the cursor one pixel down."""
        self._move_pixels(1, 0)

    def action_cursor_left(self) -> None:
        """Move the cursor one pixel left."""
        self._move_pixels(0, -1)

    def action_cursor_right(self) -> None:
        """Move the cursor one pixel right."""
        self._move_pixels(0, 1)

    def action_cursor_home(self) -> None:
        """Move the cursor to the first column."""
        self.move_cursor(self._cursor[0], 0)

    def action_cursor_end(self) -> None:
        """Move the cursor to the last column."""
        if self._data is not None:
            self.move_cursor(self._cursor[0], self._data.shape[1] - 1)

    def action_page_up(self) -> None:
        """Move the cursor up by one screenful."""
        geo = self._get_geometry()
        if geo is not None:
            self._move_pixels(-geo.vis_rows, 0)

    def action_page_down(self) -> None:
        """Move the cursor down by one screenful."""
        geo = self._get_geometry()
        if geo is not None:
            self._move_pixels(geo.vis_rows, 0)

    def action_select_cell(self) -> None:
        """Post `CellSelected` for the cell under the cursor."""
        self._post_cursor(self.CellSelected)

    def _pixel_at(self, event: events.MouseEvent) -> tuple[int, int] | None:
        """The pixel under the mouse (the half of the cell comes from pixel mouse coordinates)."""
        geo = self._get_geometry()
        offset = event.get_content_offset(self)
        if geo is None or offset is None:
            return None
        gx, gy = offset.x - geo.gutter, offset.y - geo.grid_y
        if gx < 0 or gy < 0 or gy >= geo.grid_lines:
            return None
        lower_half = (event.pointer_y - math.floor(event.pointer_y)) >= 0.5
        pr = self._origin[0] + (2 * gy + int(lower_half)) // geo.sy
        pc = self._origin[1] + gx // geo.sx
        if pr >= self._origin[0] + geo.vis_rows or pc >= self._origin[1] + geo.vis_cols:
            return None
        return pr, pc

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Hovering moves the cursor."""
        if not self.show_cursor:
            return
        pixel = self._pixel_at(event)
        geo = self._geometry
        if pixel is not None and geo is not None:
            self.move_cursor(pixel[0] * geo.row_factor, pixel[1] * geo.col_factor)

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor there and selects the cell."""
        if not self.show_cursor:
            return
        pixel = self._pixel_at(event)
        geo = self._geometry
        if pixel is not None and geo is not None:
            self.move_cursor(pixel[0] * geo.row_factor, pixel[1] * geo.col_factor)
            self.action_select_cell()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Natural height with `height: auto`: title + header + the grid at the current width."""
        if self._data is None:
            return 1
        rows, cols = self._data.shape
        gutter = self._row_gutter_width(rows)
        grid_cols = max(1, width - gutter)
        fr, _, _, sy = self._choose_cell(rows, cols, grid_cols, 2 * max(1, viewport.height))
        lines = math.ceil(math.ceil(rows / fr) * sy / 2)
        return lines + int(self.show_title) + int(self.show_header)


def _nice_at_least(minimum: int) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... that is ≥ `minimum`."""
    step = 1
    while True:
        for mult in (1, 2, 5):
            if step * mult >= minimum:
                return step * mult
        step *= 10


__all__ = ["CellMessage", "Heatmap", "fit_grid", "half_block_segments"]
