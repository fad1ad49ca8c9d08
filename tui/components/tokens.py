"""A prompt split into its token pieces, each with its id, and a cursor to pick one.

Why: "how does the model see my text" is answered by the token boundaries, so they must be
visible: pieces alternate between two background colours, whitespace is drawn ('·' space,
'↵' newline, '→' tab), special tokens are marked, and the id is printed under each piece. The
picked token drives the other views (attention row, logit-lens column).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from typing_extensions import Unpack

from tui.components import cursor_grid
from tui.components.cursor_grid import ItemCursor, clamp, cursor_bindings
from tui.components.line_cache import LineCache
from tui.components.options import WidgetOptions
from tui.components.theme import fit_cells, visible_piece
from tui.css import component_classes, widget_css

#: Blank columns between two tokens: without it, ids like 198 and 750 read as "198750".
_GAP = 1


@dataclass(frozen=True)
class _Chip:
    """Where token `index` is drawn: row of chips, x and width in cells, and its two texts."""

    index: int
    row: int
    x: int
    width: int
    text: str
    id_text: str


class TokenStrip(ItemCursor, LineCache, ScrollView, can_focus=True):
    """Token pieces wrapped over lines, with ids underneath and a token cursor."""

    DEFAULT_CSS = widget_css(__file__)

    COMPONENT_CLASSES: ClassVar[set[str]] = component_classes("tokens", "even", "odd", "special", "id", "cursor")

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings("tokens", ("left", "right", "up", "down", "home", "end", "select"), ids={"select": "pick"},
                         descriptions={"left": "Previous token", "right": "Next token", "up": "Token above",
                                       "down": "Token below", "home": "First token", "end": "Last token",
                                       "select": "Pick token"}),
        Binding("i", "toggle_ids", "Ids", show=False, id="tokens.toggle_ids"),
    ]

    class TokenHighlighted(cursor_grid.ItemMoved):
        """The cursor moved to token `index` (also `col`)."""

        SENDER = "strip"
        FIELDS = ("index", "token_id", "piece")
        strip: TokenStrip
        token_id: int | None
        piece: str

    class TokenPicked(TokenHighlighted, cursor_grid.CellSelected):
        """Enter or a click picked token `index`."""

    def __init__(
        self,
        pieces: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        *,
        special: Sequence[bool] | None = None,
        show_ids: bool = True,
        max_piece_width: int = 16,
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the strip.

        Args:
            pieces: Decoded text of each token (" self", "\\n", "<|im_start|>").
            ids: Token ids (same length), printed under the pieces.
            special: True for special/added tokens (marked).
            show_ids: Print ids under the pieces (key `i` toggles).
            max_piece_width: Longer pieces are cut with '…'.
        """
        super().__init__(**options)
        self._pieces: list[str] = []
        self._ids: list[int] | None = None
        self._special: list[bool] = []
        self.show_ids = show_ids
        self.max_piece_width = max_piece_width
        self._chips: list[_Chip] = []
        self._row_starts: list[int] = []  # first chip of each row
        self._layout_width = -1
        if pieces is not None:
            self._store(pieces, ids, special)

    # ------------------------------------------------------------------ data

    cursor = ItemCursor.item  # the index of the token under the cursor

    @property
    def count(self) -> int:
        """Number of tokens."""
        return len(self._pieces)

    def _store(self, pieces: Sequence[str], ids: Sequence[int] | None, special: Sequence[bool] | None) -> None:
        n = len(pieces)
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} pieces")
        if special is not None and len(special) != n:
            raise ValueError(f"{len(special)} special flags for {n} pieces")
        self._pieces = list(pieces)
        self._ids = list(ids) if ids is not None else None
        self._special = list(special) if special is not None else [False] * n
        self._item = clamp(self._item, 0, n - 1)

    def set_tokens(
        self, pieces: Sequence[str], ids: Sequence[int] | None = None, *, special: Sequence[bool] | None = None
    ) -> None:
        """Show another tokenised prompt (the cursor index is kept when valid)."""
        self._store(pieces, ids, special)
        self._invalidate()

    # -------------------------------------------------------------- layout

    def _invalidate(self) -> None:
        self._layout_width = -1
        self._lines.clear()
        self._ensure_layout()
        self.refresh()

    @property
    def _lines_per_row(self) -> int:
        return 2 if self.show_ids and self._ids is not None else 1

    def _ensure_layout(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        if width <= 0 or width == self._layout_width:
            return
        chips: list[_Chip] = []
        row_starts: list[int] = []
        x, row = 0, 0
        for i, piece in enumerate(self._pieces):
            text = visible_piece(piece)
            if cell_len(text) > self.max_piece_width:
                text = fit_cells(text, self.max_piece_width)
            id_text = str(self._ids[i]) if self._ids is not None else ""
            chip_width = min(width, max(cell_len(text), len(id_text) if self._lines_per_row == 2 else 0, 1))
            if x + chip_width > width and x > 0:
                x, row = 0, row + 1
            if row == len(row_starts):
                row_starts.append(i)
            chips.append(_Chip(i, row, x, chip_width, text, id_text))
            x += chip_width + _GAP
        self._chips, self._row_starts = chips, row_starts
        self._layout_width = width
        rows = (chips[-1].row + 1) if chips else 0
        self.virtual_size = Size(width, rows * self._lines_per_row)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """With `height: auto`, as many lines as the wrapped tokens need."""
        self._ensure_layout()
        return max(1, self.virtual_size.height)

    # ------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        """One line: the pieces of a row of chips, or their ids."""
        self._ensure_layout()
        return self._cached_line(
            y + int(self.scroll_offset.y), lambda line: self._render_virtual_line(line).apply_style(self.rich_style)
        )

    def _chip_style(self, chip: _Chip, id_line: bool) -> Style:
        style = self.get_component_rich_style("tokens--even" if chip.index % 2 == 0 else "tokens--odd")
        if chip.index == self._item:
            style += self.get_component_rich_style("tokens--cursor", partial=True)
        elif id_line:
            style += self.get_component_rich_style("tokens--id", partial=True)
        elif self._special[chip.index]:
            style += self.get_component_rich_style("tokens--special", partial=True)
        return style

    def _render_virtual_line(self, y: int) -> Strip:
        width = self._layout_width
        per_row = self._lines_per_row
        row, id_line = divmod(y, per_row) if per_row == 2 else (y, 0)
        if row >= len(self._row_starts):
            return Strip.blank(width)
        start = self._row_starts[row]
        end = self._row_starts[row + 1] if row + 1 < len(self._row_starts) else len(self._chips)
        segments = []
        for chip in self._chips[start:end]:
            text = chip.id_text if id_line else chip.text
            segments.append(Segment(fit_cells(text, chip.width, ellipsis=False), self._chip_style(chip, bool(id_line))))
            segments.append(Segment(" " * _GAP))
        return Strip(segments).adjust_cell_length(width)

    # --------------------------------------------------------------- cursor

    def move_to(self, index: int, *, post: bool = True) -> None:
        """Put the cursor on token `index` (negative counts from the end); posts `TokenHighlighted`."""
        self.move_to_item(index if index >= 0 else self.count + index, post=post)

    def _scroll_to_item(self) -> None:
        self._ensure_layout()
        if self._item < len(self._chips):
            chip = self._chips[self._item]
            per_row = self._lines_per_row
            self.scroll_to_region(Region(chip.x, chip.row * per_row, chip.width, per_row), animate=False, immediate=True)

    def _post(self, kind: type[TokenHighlighted]) -> None:
        if self._pieces:
            token_id = self._ids[self._item] if self._ids is not None else None
            self.post_message(kind(self, self._item, token_id, self._pieces[self._item]))

    def _post_moved(self) -> None:
        self._post(self.TokenHighlighted)

    # the ItemCursor hooks: the tokens are one row for left/right/home/end; up/down go to the wrapped line
    def step_cursor(self, d_row: int, d_col: int) -> None:
        if d_row:
            self._move_row(d_row)
        else:
            super().step_cursor(0, d_col)

    def _move_row(self, delta: int) -> None:
        """The token above / below (the one under the middle of the current token)."""
        self._ensure_layout()
        if not self._chips:
            return
        chip = self._chips[self._item]
        row = chip.row + delta
        if not 0 <= row < len(self._row_starts):
            return
        middle = chip.x + chip.width // 2
        start = self._row_starts[row]
        end = self._row_starts[row + 1] if row + 1 < len(self._row_starts) else len(self._chips)
        xs = [c.x for c in self._chips[start:end]]
        self.move_to(start + max(0, bisect.bisect_right(xs, middle) - 1))

    def _post_selected(self) -> None:
        self._post(self.TokenPicked)

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        index = self.token_at(x, y)
        return (0, index) if index is not None else None

    def action_toggle_ids(self) -> None:
        """Show / hide the ids line."""
        self.show_ids = not self.show_ids
        self._invalidate()
        self._scroll_to_item()

    def token_at(self, x: int, y: int) -> int | None:
        """The token drawn at content coordinates `(x, y)` of the (scrolled) strip."""
        self._ensure_layout()
        row = y // self._lines_per_row
        if not 0 <= row < len(self._row_starts):
            return None
        start = self._row_starts[row]
        end = self._row_starts[row + 1] if row + 1 < len(self._row_starts) else len(self._chips)
        for chip in self._chips[start:end]:
            if chip.x <= x < chip.x + chip.width:
                return chip.index
        return None


__all__ = ["TokenStrip"]
