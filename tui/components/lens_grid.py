"""Logit-lens grid: for every layer (row) and position (column), the top next-token guess.

Why a grid of text cells instead of a heatmap: the point of the logit lens is *which* token a
layer predicts, so each cell shows the top token piece (cut to the column width, whitespace made
visible) on a background that encodes its probability (sequential ramp 0..1). The view pans with
the cursor when there are more layers or positions than fit; the input token of each position is
shown in the header. The engine computes everything; this widget only lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import BindingType
from textual.strip import Strip
from textual.widget import Widget
from typing_extensions import Unpack

from tui.components import cursor_grid
from tui.components.cursor_grid import CursorGrid, GridMessage, cursor_bindings
from tui.components.line_cache import LineCache
from tui.components.options import WidgetOptions
from tui.components.theme import Ramp, contrast_text, fit_cells, format_value, get_ramp, visible_piece
from tui.css import component_classes, widget_css


class LensMessage(GridMessage):
    """Base of the grid's messages: the cell at `row` (index into the rows), `position`.

    `layer` is the layer label of the row (e.g. 12, or "final"), `piece` the top token piece and
    `prob` its probability (NaN if unknown).
    """

    FIELDS = ("row", "position", "layer", "piece", "prob")
    grid: LensGrid
    position: int
    layer: int | str
    piece: str
    prob: float

    def cell(self) -> tuple[int, int]:
        """Row and position."""
        return self.row, self.position


class LensGrid(CursorGrid, LineCache, Widget, can_focus=True):
    """Rows = layers, columns = positions, cell = top token piece on a probability colour."""

    DEFAULT_CSS = widget_css(__file__)

    COMPONENT_CLASSES: ClassVar[set[str]] = component_classes("lens-grid", "title", "status", "header", "label", "label-cursor")

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings("lens_grid", descriptions={"home": "First position", "end": "Last position"}),
    ]

    class CursorMoved(LensMessage, cursor_grid.CursorMoved):
        """The cursor moved to another cell (keys or click)."""

    class CellSelected(LensMessage, cursor_grid.CellSelected):
        """Enter or a click on a cell."""

    def __init__(
        self,
        pieces: Sequence[Sequence[str]] | None = None,
        probs: object | None = None,
        *,
        layers: Sequence[int | str] | None = None,
        input_pieces: Sequence[str] | None = None,
        title: str = "logit lens",
        cell_width: int = 8,
        ramp: Ramp | str = "sequential",
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the grid.

        Args:
            pieces: `rows × positions` top-token pieces (decoded text).
            probs: `rows × positions` probabilities of those tokens (0..1; NaN = unknown).
            layers: Label of each row (default 0..rows-1), e.g. layer numbers and "final".
            input_pieces: The prompt's token piece at each position (header line).
            title: Title line text.
            cell_width: Columns per position, including a 1-column gap.
            ramp: Colour ramp for probabilities (0..1).
        """
        super().__init__(**options)
        self._title = title
        self.cell_width = max(2, cell_width)
        self._ramp = get_ramp(ramp)
        self._pieces: list[list[str]] = []
        self._probs = np.zeros((0, 0))
        self._levels = np.zeros((0, 0), dtype=np.int16)
        self._layers: list[int | str] = []
        self._inputs: list[str] | None = None
        self._cursor = (0, 0)
        self._origin = (0, 0)
        self._cell_styles: dict[tuple[int, bool], Style] = {}
        if pieces is not None and probs is not None:
            self._store(pieces, probs, layers, input_pieces)

    # ------------------------------------------------------------------ data

    @property
    def cursor(self) -> tuple[int, int]:
        """`(row, position)` of the cursor."""
        return self._cursor

    @property
    def shape(self) -> tuple[int, int]:
        """`(rows, positions)`."""
        return (len(self._pieces), len(self._pieces[0]) if self._pieces else 0)

    def _store(
        self,
        pieces: Sequence[Sequence[str]],
        probs: object,
        layers: Sequence[int | str] | None,
        input_pieces: Sequence[str] | None,
    ) -> None:
        grid = [list(row) for row in pieces]
        rows = len(grid)
        cols = len(grid[0]) if grid else 0
        if any(len(row) != cols for row in grid):
            raise ValueError("every row of pieces must have one length")
        prob_array = np.array(probs, dtype=np.float64).reshape(rows, cols) if rows else np.zeros((0, 0))
        if layers is not None and len(layers) != rows:
            raise ValueError(f"{len(layers)} layer labels for {rows} rows")
        if input_pieces is not None and len(input_pieces) != cols:
            raise ValueError(f"{len(input_pieces)} input pieces for {cols} positions")
        self._pieces = grid
        self._probs = prob_array
        self._levels = self._ramp.quantise(prob_array, 0.0, 1.0)
        self._layers = list(layers) if layers is not None else list(range(rows))
        self._inputs = list(input_pieces) if input_pieces is not None else None
        self._cursor = (min(self._cursor[0], max(0, rows - 1)), min(self._cursor[1], max(0, cols - 1)))

    def set_data(
        self,
        pieces: Sequence[Sequence[str]],
        probs: object,
        *,
        layers: Sequence[int | str] | None = None,
        input_pieces: Sequence[str] | None = None,
        title: str | None = None,
    ) -> None:
        """Show another lens result (cursor kept where valid)."""
        self._store(pieces, probs, layers, input_pieces)
        if title is not None:
            self._title = title
        self._invalidate()
        if self.is_mounted:
            self._post(self.CursorMoved)

    # -------------------------------------------------------------- geometry

    def _invalidate(self) -> None:
        self._lines.clear()
        self._clamp_origin()
        self.refresh()

    @property
    def _gutter(self) -> int:
        widest = max((len(str(label)) for label in self._layers), default=1)
        return min(10, widest) + 1

    @property
    def _visible(self) -> tuple[int, int]:
        """How many rows and positions fit."""
        width, height = self.size
        return max(1, height - 2), max(1, (width - self._gutter) // self.cell_width)

    def _clamp_origin(self) -> None:
        rows, cols = self.shape
        vis_rows, vis_cols = self._visible
        (r, c), (orow, ocol) = self._cursor, self._origin
        orow = max(0, min(max(orow, r - vis_rows + 1), r, max(0, rows - vis_rows)))
        ocol = max(0, min(max(ocol, c - vis_cols + 1), c, max(0, cols - vis_cols)))
        self._origin = (orow, ocol)

    # ------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        """Title, header (input tokens) or one layer row."""
        return self._cached_line(y, lambda line: self._render_line(line).apply_style(self.rich_style))

    def _render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._render_title(width)
        rows, cols = self.shape
        if rows == 0 or cols == 0:
            return Strip.blank(width)
        if y == 1:
            return self._render_header(width)
        row = self._origin[0] + y - 2
        if row >= min(rows, self._origin[0] + self._visible[0]):
            return Strip.blank(width)
        return self._render_row(row, width)

    def _render_title(self, width: int) -> Strip:
        title_style = self.get_component_rich_style("lens-grid--title")
        status_style = self.get_component_rich_style("lens-grid--status")
        status = self._status_text()
        left = fit_cells(self._title, max(0, width - len(status) - 2)) if width > len(status) + 2 else ""
        segments = [Segment(left, title_style), Segment(fit_cells(status, width - len(left), align="right"), status_style)]
        return Strip(segments).adjust_cell_length(width)

    def _status_text(self) -> str:
        rows, cols = self.shape
        if rows == 0 or cols == 0:
            return ""
        r, c = self._cursor
        text = f"layer {self._layers[r]} · pos {c}"
        if self._inputs is not None:
            text += f" '{visible_piece(self._inputs[c])}'"
        return text + f" → '{visible_piece(self._pieces[r][c])}' p={format_value(float(self._probs[r, c]))}"

    def _render_header(self, width: int) -> Strip:
        style = self.get_component_rich_style("lens-grid--header")
        _, vis_cols = self._visible
        ocol = self._origin[1]
        cols = self.shape[1]
        parts = [" " * self._gutter]
        for c in range(ocol, min(cols, ocol + vis_cols)):
            label = visible_piece(self._inputs[c]) if self._inputs is not None else str(c)
            parts.append(fit_cells(label, self.cell_width - 1) + " ")
        return Strip([Segment("".join(parts), style)]).adjust_cell_length(width)

    def _cell_style(self, level: int, cursor: bool) -> Style:
        key = (level, cursor)
        style = self._cell_styles.get(key)
        if style is None:
            background = self._ramp.color(level)
            assert background is not None
            style = Style(color=contrast_text(background), bgcolor=background, bold=cursor, reverse=cursor)
            self._cell_styles[key] = style
        return style

    def _render_row(self, row: int, width: int) -> Strip:
        _, vis_cols = self._visible
        ocol = self._origin[1]
        cols = self.shape[1]
        on_cursor_row = row == self._cursor[0]
        label_style = self.get_component_rich_style("lens-grid--label-cursor" if on_cursor_row else "lens-grid--label")
        segments = [Segment(fit_cells(str(self._layers[row]), self._gutter - 1, align="right"), label_style), Segment(" ")]
        for c in range(ocol, min(cols, ocol + vis_cols)):
            text = fit_cells(visible_piece(self._pieces[row][c]), self.cell_width - 1)
            is_cursor = on_cursor_row and c == self._cursor[1]
            segments.append(Segment(text, self._cell_style(int(self._levels[row, c]), is_cursor)))
            segments.append(Segment(" "))
        return Strip(segments).adjust_cell_length(width)

    # --------------------------------------------------------------- cursor

    def _message(self, kind: type[LensMessage]) -> LensMessage:
        r, c = self._cursor
        return kind(self, r, c, self._layers[r], self._pieces[r][c], float(self._probs[r, c]))

    def _post(self, kind: type[LensMessage]) -> None:
        rows, cols = self.shape
        if rows and cols:
            self.post_message(self._message(kind))

    def move_cursor(self, row: int, position: int) -> None:
        """Put the cursor on a cell (clamped; negative position counts from the end)."""
        cols = self.shape[1]
        self.move_cell(row, position if position >= 0 else cols + position)

    # the CursorGrid hooks
    def grid_size(self) -> tuple[int, int]:
        return self.shape

    @property
    def cursor_cell(self) -> tuple[int, int]:
        return self._cursor

    def _place_cursor(self, row: int, col: int) -> None:
        if (row, col) == self._cursor:
            return
        self._cursor = (row, col)
        self._invalidate()
        self._post(self.CursorMoved)

    def _post_selected(self) -> None:
        self._post(self.CellSelected)

    def page_size(self) -> int:
        return self._visible[0]

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        """The `(row, position)` drawn at content coordinates `(x, y)`, if any."""
        rows, cols = self.shape
        if y < 2 or x < self._gutter:
            return None
        row = self._origin[0] + y - 2
        col = self._origin[1] + (x - self._gutter) // self.cell_width
        if row < min(rows, self._origin[0] + self._visible[0]) and col < min(cols, self._origin[1] + self._visible[1]):
            return row, col
        return None


__all__ = ["LensGrid", "LensMessage"]
