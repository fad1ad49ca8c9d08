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
from textual.binding import BindingType
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget
from typing_extensions import Unpack

from tui.components import cursor_grid
from tui.components.cursor_grid import CursorGrid, GridMessage, clamp, cursor_bindings
from tui.components.heatmap_geometry import (
    HeatmapGeometry,
    compute_geometry,
    cursor_pixel,
    fit_grid,
    grid_line_levels,
    header_text,
    pan_origin,
    pixel_at,
    row_gutter_width,
    row_label,
)
from tui.components.line_cache import HalfBlockLines
from tui.components.options import ColourLimits, WidgetOptions, assign_given
from tui.components.reduce import BlockReduce, as_masked_float
from tui.components.theme import HalfBlockStyles, Ramp, fit_cells, format_value, get_ramp, visible_piece
from tui.css import component_classes, widget_css

FitMode = Literal["fit", "crop"]

UPPER_HALF = "▀"
LOWER_HALF = "▄"


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


#: The old private name (the heat strip and tests use it).
_Geometry = HeatmapGeometry


@dataclass
class Frame:
    """What a heatmap draws around its cells (the constructor's `show_*` and `label_width` options)."""

    title: bool = True  # the title/status line
    status: bool = True  # the cursor's position and value at the right of the title line
    header: bool = True  # the column label / index line
    row_labels: bool = True  # the row label / index column
    label_width: int = 10  # widest row label, in cells
    cursor: bool = True  # a cursor that reacts to keys and mouse


class CellMessage(GridMessage):
    """Base of the heatmap's cell messages: which cell (or block) and its value.

    `row`/`col` are matrix indices (the first cell of the block when the view is downsampled);
    `row_span`/`col_span` are the matrix ranges the pixel covers; `value` is what the pixel shows
    (NaN when masked).
    """

    SENDER = "heatmap"
    FIELDS = ("row", "col", "value", "row_span", "col_span", "row_label", "col_label")
    heatmap: Heatmap
    value: float
    row_span: range
    col_span: range
    row_label: str | None
    col_label: str | None

    @property
    def masked(self) -> bool:
        """True when the cell has no value (NaN/-inf in the matrix)."""
        return not math.isfinite(self.value)


class Heatmap(CursorGrid, HalfBlockLines, Widget, can_focus=True):
    """A matrix drawn as coloured half blocks, with labels, a title line and a cursor.

    Data goes in with `set_matrix` (or the constructor) as anything numpy can turn into a 2-D float
    array; NaN/±inf cells are drawn in the ramp's "masked" colour. The widget never changes the
    data except for display-only block reduction.
    """

    DEFAULT_CSS = widget_css(__file__)

    COMPONENT_CLASSES: ClassVar[set[str]] = component_classes("heatmap", "title", "status", "label", "label-cursor", "tick")

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings("heatmap", ids={"up": "cursor_up", "down": "cursor_down", "left": "cursor_left",
                                         "right": "cursor_right", "home": "cursor_home", "end": "cursor_end"}),
    ]

    HOVER_MOVES_CURSOR = True

    class CursorMoved(CellMessage, cursor_grid.CursorMoved):
        """The cursor moved (keys or mouse hover) or the matrix under it changed."""

    class CellSelected(CellMessage, cursor_grid.CellSelected):
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
        **options: Unpack[WidgetOptions],
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
        super().__init__(**options)
        self._ramp = get_ramp(ramp)
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
        self.frame = Frame(show_title, show_status, show_header, show_row_labels, label_width, show_cursor)
        if not show_cursor:
            self.can_focus = False
        self._data: np.ndarray | None = None
        self._row_labels: list[str] | None = None
        self._col_labels: list[str] | None = None
        self._limits: tuple[float, float] = (0.0, 1.0)
        self._cursor = (0, 0)  # matrix coordinates
        self._origin = (0, 0)  # first visible pixel (crop mode)
        self._geometry: _Geometry | None = None
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
        **limits: Unpack[ColourLimits],
    ) -> None:
        """Replace the matrix (and labels); keeps the cursor where possible and posts `CursorMoved`.

        `vmin`/`vmax` given here replace the constructor's; pass them again on each call to
        keep a fixed scale across updates (e.g. 0..1 for attention).
        """
        assign_given(self, title=title, **limits)
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
        return row_gutter_width(rows, self._row_labels, self.frame.label_width, self.frame.row_labels)

    def _get_geometry(self) -> HeatmapGeometry | None:
        if self._geometry is not None:
            return self._geometry
        if self._data is None:
            return None
        width, height = self.size
        self._geometry = compute_geometry(
            self._data, width, height, title_lines=int(self.frame.title), header_lines=int(self.frame.header),
            gutter=self._row_gutter_width(self._data.shape[0]), choose_cell=self._choose_cell, reduce=self.reduce,
            ramp=self._ramp, limits=self._limits,
        )  # fmt: skip
        self._clamp_origin()
        return self._geometry

    def _cursor_pixel(self, geo: HeatmapGeometry) -> tuple[int, int]:
        return cursor_pixel(geo, self._cursor)

    def _clamp_origin(self) -> None:
        """Pan (crop mode) so that the cursor pixel is visible."""
        if self._geometry is not None:
            self._origin = pan_origin(self._geometry, self._origin, self._cursor_pixel(self._geometry))

    # ------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        """One line of the widget (title, header, or two pixel rows of the grid)."""
        # every segment carries a full style (the widget's base is folded into the cached
        # styles): Textual adds nothing to a Line-API widget's segments
        return self._cached_line(y, self._render_line)

    def _render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self._styles.base
        geo = self._get_geometry()
        if geo is None:
            if y == 0 and self.frame.title and self._title:
                return Strip([Segment(fit_cells(self._title, width), self.get_component_rich_style("heatmap--title"))])
            return Strip.blank(width, base)
        if self.frame.title and y == 0:
            return self._render_title(geo)
        if self.frame.header and y == geo.grid_y - 1:
            return self._render_header(geo)
        grid_line = y - geo.grid_y
        if 0 <= grid_line < geo.grid_lines:
            return self._render_grid_line(geo, grid_line)
        return Strip.blank(width, base)

    def _status_text(self, geo: HeatmapGeometry) -> str:
        if not (self.frame.status and self.frame.cursor):
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

    def _render_title(self, geo: HeatmapGeometry) -> Strip:
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

    def _render_header(self, geo: HeatmapGeometry) -> Strip:
        assert self._data is not None
        text = header_text(geo, self._origin[1], self._data.shape[1], self._col_labels)
        segments = [Segment(" " * geo.gutter, self._styles.base), Segment(text, self.get_component_rich_style("heatmap--tick"))]
        return Strip(segments).adjust_cell_length(self.size.width, self._styles.base)

    def _render_grid_line(self, geo: HeatmapGeometry, line: int) -> Strip:
        width = self.size.width
        ramp = self._ramp
        cursor = self._cursor_pixel(geo) if self.frame.cursor else None
        halves = grid_line_levels(geo, self._origin, line, ramp.empty, ramp.cursor, cursor)
        if halves is None:
            return Strip.blank(width, self._styles.base)
        segments: list[Segment] = []
        if geo.gutter:
            assert self._data is not None
            label, on_cursor = row_label(geo, self._origin[0], line, cursor[0] if cursor else -1,
                                         self._data.shape[0], self._row_labels)
            style = self.get_component_rich_style("heatmap--label-cursor" if on_cursor else "heatmap--label")
            segments.append(Segment(label, style))
            segments.append(Segment(" ", self._styles.base))
        segments.extend(half_block_segments(*halves, geo.sx, self._styles))
        return Strip(segments).adjust_cell_length(width, self._styles.base)

    # --------------------------------------------------------------- cursor

    def _cell_message(self, kind: type[CellMessage], geo: HeatmapGeometry) -> CellMessage:
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
        if geo is not None and self.frame.cursor:
            self.post_message(self._cell_message(kind, geo))

    def move_cursor(self, row: int, col: int) -> None:
        """Put the cursor on a matrix cell (clamped); posts `CursorMoved` when it moved."""
        if self._data is None:
            return
        rows, cols = self._data.shape
        new = (clamp(row, 0, rows - 1), clamp(col, 0, cols - 1))
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

    # the CursorGrid hooks: the cursor moves by pixels (a block when the matrix is reduced)
    def grid_size(self) -> tuple[int, int]:
        geo = self._get_geometry()
        if geo is None or not self.frame.cursor:
            return 0, 0
        return geo.pixels.shape[0], geo.pixels.shape[1]

    @property
    def cursor_cell(self) -> tuple[int, int]:
        geo = self._get_geometry()
        return self._cursor_pixel(geo) if geo is not None else (0, 0)

    def _place_cursor(self, row: int, col: int) -> None:
        geo = self._get_geometry()
        if geo is not None:
            self.move_cursor(row * geo.row_factor, col * geo.col_factor)

    def _post_selected(self) -> None:
        self._post_cursor(self.CellSelected)

    def page_size(self) -> int:
        geo = self._get_geometry()
        return geo.vis_rows if geo is not None else 1

    def cell_at(self, x: int, y: int, lower_half: bool = False) -> tuple[int, int] | None:
        geo = self._get_geometry()
        return pixel_at(geo, self._origin, x, y, lower_half) if geo is not None else None

    def event_cell(self, event: events.MouseEvent) -> tuple[int, int] | None:
        """The pixel under the mouse (the half of the cell comes from pixel mouse coordinates)."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        return self.cell_at(offset.x, offset.y, (event.pointer_y - math.floor(event.pointer_y)) >= 0.5)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Natural height with `height: auto`: title + header + the grid at the current width."""
        if self._data is None:
            return 1
        rows, cols = self._data.shape
        gutter = self._row_gutter_width(rows)
        grid_cols = max(1, width - gutter)
        fr, _, _, sy = self._choose_cell(rows, cols, grid_cols, 2 * max(1, viewport.height))
        lines = math.ceil(math.ceil(rows / fr) * sy / 2)
        return lines + int(self.frame.title) + int(self.frame.header)


__all__ = ["CellMessage", "Heatmap", "HeatmapGeometry", "fit_grid", "half_block_segments"]
