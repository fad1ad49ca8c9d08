"""One cursor over a grid of cells, shared by every cell-addressed widget (heatmap, heat strip, small
multiples, logit-lens grid, token strip).

Why one base: the keys (arrows and h j k l, Home/End, PageUp/PageDown, Enter), clamping to the grid, mapping
a mouse click to a cell and the messages were written once per widget. Here a widget says how big its grid
is (`grid_size`), where the cursor is (`cursor_cell`), how to put it somewhere (`_place_cursor`, given a cell
already clamped) and which cell is drawn at a point (`cell_at`); the mixin does the rest. Binding ids stay
per widget (`heatmap.cursor_up`, `lens_grid.up`...), because users remap keys by id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip

#: Every move a grid may bind: name → (keys, action, description).
MOVES: dict[str, tuple[str, str, str]] = {
    "up": ("up,k", "cursor(-1, 0)", "Up"),
    "down": ("down,j", "cursor(1, 0)", "Down"),
    "left": ("left,h", "cursor(0, -1)", "Left"),
    "right": ("right,l", "cursor(0, 1)", "Right"),
    "home": ("home", "cursor_home", "First column"),
    "end": ("end", "cursor_end", "Last column"),
    "page_up": ("pageup", "cursor_page(-1)", "Page up"),
    "page_down": ("pagedown", "cursor_page(1)", "Page down"),
    "select": ("enter", "select_cell", "Select"),
}


def cursor_bindings(prefix: str, moves: Iterable[str] = tuple(MOVES), *, ids: Mapping[str, str] | None = None,
                    descriptions: Mapping[str, str] | None = None) -> list[Binding]:
    """The cursor bindings of one widget: binding id `prefix.<ids.get(move, move)>` for each of `moves`."""
    ids = ids or {}
    descriptions = descriptions or {}
    out = []
    for move in moves:
        keys, action, description = MOVES[move]
        out.append(Binding(keys, action, descriptions.get(move, description), show=False,
                           id=f"{prefix}.{ids.get(move, move)}"))
    return out


def clamp(value: int, low: int, high: int) -> int:
    """`value` within `[low, high]` (`low` when the range is empty)."""
    return max(low, min(high, value))


class WidgetMessage(Message):
    """A message a widget posts about itself: the sender, then the values named in `FIELDS`.

    Why one base: every widget message stored its sender under its own name (`strip`, `plot`...), a few
    values, and answered `control` with the sender (so `@on(..., "#id")` works). A subclass now only names
    them: `SENDER` (the attribute that also holds the sender) and `FIELDS` (the positional values after the
    sender, in order), with annotations for the type checker.
    """

    #: Attribute that holds the sending widget besides `control` ("heatmap", "strip", "plot"...).
    SENDER: ClassVar[str] = "widget"
    #: Names of the values after the sender, in the order the constructor takes them.
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, sender: object, *values: object) -> None:
        if len(values) != len(self.FIELDS):
            raise TypeError(f"{type(self).__name__} takes the sender and {', '.join(self.FIELDS) or 'nothing'}")
        super().__init__()
        setattr(self, self.SENDER, sender)
        for name, value in zip(self.FIELDS, values):
            setattr(self, name, value)

    @property
    def control(self) -> Any:
        """The widget that sent the message (for `@on(..., "#id")`)."""
        return getattr(self, self.SENDER)


class GridMessage(WidgetMessage):
    """A cell of a grid widget: `row`, `col` in the widget's cursor coordinates.

    The base takes `(grid, row, col)`; a widget whose messages name other values lists them in `FIELDS` and
    says which cell they stand for in `cell()` (e.g. a token strip: row 0, column `index`).
    """

    SENDER: ClassVar[str] = "grid"
    FIELDS: ClassVar[tuple[str, ...]] = ("row", "col")
    grid: object
    row: int
    col: int

    def __init__(self, grid: object, *values: object) -> None:
        super().__init__(grid, *values)
        self.grid = grid
        self.row, self.col = self.cell()

    def cell(self) -> tuple[int, int]:
        """The grid cell the message's values stand for."""
        return self.row, self.col


class CursorMoved(GridMessage):
    """The cursor moved (keys, mouse, new data under it)."""


class CellSelected(GridMessage):
    """Enter was pressed on a cell, or it was clicked."""


class ItemMoved(CursorMoved):
    """The cursor of an `ItemCursor` widget moved to item `index` (row 0, column `index` of its grid)."""

    index: int

    def cell(self) -> tuple[int, int]:
        """One row of items: column `index`."""
        return 0, self.index


class CursorGrid:
    """Mixin for a `Widget` with a cell cursor. Subclasses implement the four hooks below and list
    `cursor_bindings(...)` in their `BINDINGS`."""

    #: Hovering moves the cursor (the heatmap); else only keys and clicks do.
    HOVER_MOVES_CURSOR: ClassVar[bool] = False

    # --- hooks ----------------------------------------------------------------------------------------
    def grid_size(self) -> tuple[int, int]:
        """Rows and columns the cursor can take (0 when there is nothing to point at)."""
        raise NotImplementedError

    @property
    def cursor_cell(self) -> tuple[int, int]:
        """Where the cursor is, in grid coordinates."""
        raise NotImplementedError

    def _place_cursor(self, row: int, col: int) -> None:
        """Move the cursor to `(row, col)` (already clamped), redraw, post the widget's CursorMoved."""
        raise NotImplementedError

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        """The cell drawn at content coordinates `(x, y)` (scrolling included), if any."""
        raise NotImplementedError

    def _post_selected(self) -> None:
        """Post the widget's CellSelected for the cursor cell."""
        raise NotImplementedError

    def page_size(self) -> int:
        """Rows a PageUp/PageDown moves."""
        return 1

    # --- shared ---------------------------------------------------------------------------------------
    def move_cell(self, row: int, col: int) -> None:
        """Put the cursor on `(row, col)`, clamped to the grid."""
        rows, cols = self.grid_size()
        if rows <= 0 or cols <= 0:
            return
        self._place_cursor(clamp(row, 0, rows - 1), clamp(col, 0, cols - 1))

    def step_cursor(self, d_row: int, d_col: int) -> None:
        """Move the cursor by `(d_row, d_col)` cells (widgets whose rows wrap override this)."""
        row, col = self.cursor_cell
        self.move_cell(row + d_row, col + d_col)

    def action_cursor(self, d_row: int, d_col: int) -> None:
        """Arrow keys."""
        self.step_cursor(d_row, d_col)

    def action_cursor_home(self) -> None:
        """First column."""
        self.move_cell(self.cursor_cell[0], 0)

    def action_cursor_end(self) -> None:
        """Last column."""
        self.move_cell(self.cursor_cell[0], self.grid_size()[1] - 1)

    def action_cursor_page(self, direction: int) -> None:
        """A screenful up (-1) or down (1)."""
        self.step_cursor(direction * max(1, self.page_size()), 0)

    def action_select_cell(self) -> None:
        """Enter: select the cursor cell."""
        rows, cols = self.grid_size()
        if rows > 0 and cols > 0:
            self._post_selected()

    def event_cell(self, event: events.MouseEvent) -> tuple[int, int] | None:
        """The cell under the mouse."""
        offset = event.get_content_offset(self)  # type: ignore[arg-type]
        if offset is None:
            return None
        scroll = getattr(self, "scroll_offset", None)
        dx, dy = (int(scroll.x), int(scroll.y)) if scroll is not None else (0, 0)
        return self.cell_at(offset.x + dx, offset.y + dy)

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor to the cell and selects it."""
        cell = self.event_cell(event)
        if cell is not None:
            self.move_cell(*cell)
            self._post_selected()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Hovering moves the cursor where `HOVER_MOVES_CURSOR`."""
        if self.HOVER_MOVES_CURSOR:
            cell = self.event_cell(event)
            if cell is not None:
                self.move_cell(*cell)


class ItemCursor(CursorGrid):
    """Mixin (before `LineCache` in the bases) for a widget whose cursor is on one of `count` items that make one
    row of the grid, wrapped onto lines: the tiles of small multiples, the pieces of a token strip.

    Why one base: both kept the cursor's item, clamped a move, dropped their cached lines, redrew, scrolled the
    item into view and posted their message, each in its own words. A widget says how many items there are
    (`count`), how to scroll to the cursor's item (`_scroll_to_item`) and what it posts (`_post_moved`); moving
    up/down to the wrapped line above or below stays its own `step_cursor`.
    """

    _item = 0  # the item under the cursor
    _lines: dict[int, Strip]  # LineCache's cached lines
    refresh: Callable[..., Any]  # Widget's

    @property
    def count(self) -> int:
        """Number of items."""
        raise NotImplementedError

    @property
    def item(self) -> int:
        """Index of the item under the cursor."""
        return self._item

    def _scroll_to_item(self) -> None:
        """Scroll the cursor's item into view."""
        raise NotImplementedError

    def _post_moved(self) -> None:
        """Post the widget's `ItemMoved` for the cursor's item."""
        raise NotImplementedError

    def move_to_item(self, index: int, *, post: bool = True) -> None:
        """Put the cursor on item `index` (clamped), redraw, scroll it into view and post `_post_moved` (unless
        `post` is False); nothing happens when there are no items or the cursor is there already."""
        if self.count == 0:
            return
        index = clamp(index, 0, self.count - 1)
        if index == self._item:
            return
        self._item = index
        self._lines.clear()
        self.refresh()
        self._scroll_to_item()
        if post:
            self._post_moved()

    # the CursorGrid hooks for items in display order (a widget that shows them in another order overrides them)
    def grid_size(self) -> tuple[int, int]:
        return (1, self.count) if self.count else (0, 0)

    @property
    def cursor_cell(self) -> tuple[int, int]:
        return 0, self._item

    def _place_cursor(self, row: int, col: int) -> None:
        self.move_to_item(col)


__all__ = [
    "MOVES", "CellSelected", "CursorGrid", "CursorMoved", "GridMessage", "ItemCursor", "ItemMoved", "WidgetMessage", "clamp",
    "cursor_bindings",
]
