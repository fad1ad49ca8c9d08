"""Small multiples: many little heatmaps (e.g. every attention head of a layer) side by side.

Why one Line-API widget instead of a grid of `Heatmap` children: dozens of heads are laid out,
framed and redrawn as one canvas with the same half-block pixels and one shared colour scale, so
a head looks comparable to its neighbours, layout never leaves gaps, and a redraw is one pass.
Heads are laid out in groups with a caption: with grouped-query attention the query heads that
share one key/value head belong together ("KV head 0: heads 0-5"). One tile is highlighted
(keys / mouse); Enter or a click selects it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from textual import events
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from typing_extensions import Unpack

from tui.components import cursor_grid
from tui.components.cursor_grid import ItemCursor, clamp, cursor_bindings
from tui.components.heatmap import half_block_segments
from tui.components.heatmap_geometry import fit_grid
from tui.components.line_cache import HalfBlockLines
from tui.components.options import ColourLimits, WidgetOptions, assign_given
from tui.components.reduce import BlockReduce, as_masked_float, block_reduce
from tui.components.theme import Ramp, fit_cells, get_ramp
from tui.css import component_classes, widget_css

Group = tuple[str, Sequence[int]]

LIGHT_FRAME = "╭─╮│╰╯"
HEAVY_FRAME = "┏━┓┃┗┛"


@dataclass
class _Layout:
    """Positions of every tile for one width (content coordinates; y is the virtual line)."""

    width: int
    inner_w: int
    inner_h: int  # lines
    fr: int
    fc: int
    sx: int
    sy: int
    levels: list[np.ndarray]
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)  # tile -> (x, y) of frame
    captions: dict[int, str] = field(default_factory=dict)  # line -> caption
    row_tops: list[int] = field(default_factory=list)  # first line of each display row of tiles
    rows: list[list[int]] = field(default_factory=list)  # tiles of each display row
    total_lines: int = 0

    @property
    def outer_w(self) -> int:
        return self.inner_w + 2

    @property
    def outer_h(self) -> int:
        return self.inner_h + 2


def gqa_groups(num_heads: int, num_kv_heads: int | None) -> list[Group]:
    """Group query heads by the key/value head they share: `[("KV head 0: heads 0-5", [0..5]), ...]`.

    Without GQA (`num_kv_heads` None or equal to `num_heads`) there is one unnamed group.
    """
    if not num_kv_heads or num_kv_heads >= num_heads:
        return [("", list(range(num_heads)))]
    size = num_heads // num_kv_heads
    return [
        (f"KV head {kv}: heads {kv * size}-{(kv + 1) * size - 1}", list(range(kv * size, (kv + 1) * size)))
        for kv in range(num_kv_heads)
    ]


class SmallMultiples(ItemCursor, HalfBlockLines, ScrollView, can_focus=True):
    """A framed grid of small heatmaps, in captioned groups, with one highlighted tile."""

    DEFAULT_CSS = widget_css(__file__)

    COMPONENT_CLASSES: ClassVar[set[str]] = component_classes("small-multiples", "caption", "frame", "title", "highlight")

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings("small_multiples", ("left", "right", "up", "down", "select"),
                         descriptions={"left": "Previous", "right": "Next", "select": "Open"}),
    ]

    class Highlighted(cursor_grid.ItemMoved):
        """The highlighted tile changed (keys or click); `col` is its index too."""

        SENDER = "small_multiples"
        FIELDS = ("index",)
        small_multiples: SmallMultiples

    class Selected(Highlighted, cursor_grid.CellSelected):
        """Enter was pressed or a tile was clicked: open tile `index`."""

    def __init__(
        self,
        matrices: Sequence[object] | np.ndarray | None = None,
        *,
        groups: Sequence[Group] | None = None,
        titles: Sequence[str] | None = None,
        ramp: Ramp | str = "sequential",
        vmin: float | None = None,
        vmax: float | None = None,
        reduce: BlockReduce | None = None,
        tile_width: int | None = None,
        min_tile: int = 8,
        max_tile: int = 40,
        **options: Unpack[WidgetOptions],
    ) -> None:
        """Create the grid.

        Args:
            matrices: N matrices of one shape (an (N, R, C) array or a list); NaN/±inf = masked.
            groups: `(caption, tile indices)` in display order (see `gqa_groups`); default one group.
            titles: One title per tile (default "h0", "h1", ...), drawn in the tile's frame.
            ramp: Colour ramp shared by all tiles.
            vmin: Shared lower limit (default: over all tiles).
            vmax: Shared upper limit (default: over all tiles).
            reduce: Block reduction when a tile is smaller than its matrix.
            tile_width: Width of a tile's inside in cells; default: the largest that fits the height.
            min_tile: Smallest automatic tile width.
            max_tile: Largest automatic tile width.
        """
        super().__init__(**options)
        self._ramp = get_ramp(ramp)
        self._half_blocks = None
        self._vmin, self._vmax = vmin, vmax
        self._reduce = reduce
        self._tile_width = tile_width
        self._min_tile, self._max_tile = min_tile, max_tile
        self._data: np.ndarray = np.zeros((0, 1, 1))
        self._groups: list[Group] = []
        self._titles: list[str] = []
        self._limits = (0.0, 1.0)
        self._layout: _Layout | None = None
        self._levels_key: tuple[int, int] | None = None
        self._levels: list[np.ndarray] = []
        if matrices is not None:
            self._load(matrices, groups, titles)

    # ------------------------------------------------------------------ data

    highlighted = ItemCursor.item  # the index of the highlighted tile

    @property
    def count(self) -> int:
        """Number of tiles."""
        return int(self._data.shape[0])

    @property
    def groups(self) -> list[Group]:
        """The groups in display order."""
        return list(self._groups)

    def _load(
        self, matrices: Sequence[object] | np.ndarray, groups: Sequence[Group] | None, titles: Sequence[str] | None
    ) -> None:
        mats = [as_masked_float(m) for m in matrices]
        if not mats:
            self._data = np.zeros((0, 1, 1))
        else:
            shapes = {m.shape for m in mats}
            if len(shapes) != 1:
                raise ValueError(f"all matrices must have one shape, got {sorted(shapes)}")
            self._data = np.stack(mats)
        n = len(mats)
        self._groups = [(caption, list(indices)) for caption, indices in groups] if groups else [("", list(range(n)))]
        listed = sorted(i for _, indices in self._groups for i in indices)
        if listed != list(range(n)):
            raise ValueError("groups must list every tile index exactly once")
        self._titles = list(titles) if titles is not None else [f"h{i}" for i in range(n)]
        if len(self._titles) != n:
            raise ValueError(f"{len(self._titles)} titles for {n} tiles")
        self._limits = self._ramp.limits(self._data, self._vmin, self._vmax) if n else (0.0, 1.0)
        self._item = clamp(self._item, 0, n - 1)
        self._levels_key = None

    def set_matrices(
        self,
        matrices: Sequence[object] | np.ndarray,
        *,
        groups: Sequence[Group] | None = None,
        titles: Sequence[str] | None = None,
        **limits: Unpack[ColourLimits],
    ) -> None:
        """Replace all tiles (e.g. another layer); the highlighted index is kept when valid."""
        assign_given(self, **limits)
        self._load(matrices, groups, titles)
        self._invalidate()

    def highlight(self, index: int) -> None:
        """Highlight tile `index` (clamped), scroll it into view and post `Highlighted`."""
        self.move_to_item(index)

    # -------------------------------------------------------------- layout

    def _invalidate(self) -> None:
        self._layout = None
        self._lines.clear()
        self.refresh()
        if self.is_mounted:
            self.call_after_refresh(self._ensure_layout)

    def on_mount(self) -> None:
        """Lay out once the size is known."""
        self._ensure_layout()

    def on_resize(self, event: events.Resize) -> None:
        """Tile size and tiles per row depend on the size."""
        self._layout = None
        self._lines.clear()
        self._ensure_layout()

    def _ensure_layout(self) -> _Layout | None:
        if self._layout is None and self.count and self.size.width > 0:
            self._layout = self._compute_layout()
            self.virtual_size = Size(self._layout.width, self._layout.total_lines)
        return self._layout

    def _tile_geometry(self, box: int) -> tuple[int, int, int, int, int, int]:
        """Fit a matrix into a square box of `box` cells × `box` half-rows: factors and inner size."""
        _, rows, cols = self._data.shape
        fr, fc, sx, sy = fit_grid(rows, cols, box, box, max_scale=8)
        inner_w = math.ceil(cols / fc) * sx
        inner_h = math.ceil(math.ceil(rows / fr) * sy / 2)
        return fr, fc, sx, sy, inner_w, inner_h

    def _lines_needed(self, width: int, outer_w: int, outer_h: int) -> int:
        per_row = max(1, (width + 1) // (outer_w + 1))
        return sum(int(bool(caption)) + math.ceil(len(idx) / per_row) * outer_h for caption, idx in self._groups)

    def _compute_layout(self) -> _Layout:
        width = max(1, self.scrollable_content_region.width or self.size.width)
        height = max(1, self.size.height)
        if self._tile_width is not None:
            box = self._tile_width
        else:
            box = self._min_tile
            for candidate in range(self._max_tile, self._min_tile - 1, -1):
                *_, inner_w, inner_h = self._tile_geometry(candidate)
                if inner_w + 2 <= width and self._lines_needed(width, inner_w + 2, inner_h + 2) <= height:
                    box = candidate
                    break
        fr, fc, sx, sy, inner_w, inner_h = self._tile_geometry(box)
        if self._levels_key != (fr, fc):
            how = self._reduce or ("max" if self._ramp.kind == "sequential" else "absmax")
            self._levels = [self._ramp.quantise(block_reduce(m, fr, fc, how), *self._limits) for m in self._data]
            self._levels_key = (fr, fc)
        layout = _Layout(width, inner_w, inner_h, fr, fc, sx, sy, self._levels)
        per_row = max(1, (width + 1) // (layout.outer_w + 1))
        y = 0
        for caption, indices in self._groups:
            if caption:
                layout.captions[y] = caption
                y += 1
            for start in range(0, len(indices), per_row):
                row = list(indices[start : start + per_row])
                layout.row_tops.append(y)
                layout.rows.append(row)
                for col, tile in enumerate(row):
                    layout.positions[tile] = (col * (layout.outer_w + 1), y)
                y += layout.outer_h
        layout.total_lines = y
        return layout

    # ------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        """One line of the canvas (scrolled)."""
        # segments carry full styles
        return self._cached_line(y + int(self.scroll_offset.y), self._render_virtual_line)

    def _render_virtual_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        base = self._styles.base
        layout = self._ensure_layout()
        if layout is None:
            return Strip.blank(width, base)
        caption = layout.captions.get(y)
        if caption is not None:
            style = self.get_component_rich_style("small-multiples--caption")
            return Strip([Segment(fit_cells(caption, width), style)]).adjust_cell_length(width, base)
        r = bisect.bisect_right(layout.row_tops, y) - 1
        if r < 0 or y >= layout.row_tops[r] + layout.outer_h:
            return Strip.blank(width, base)
        offset = y - layout.row_tops[r]
        segments: list[Segment] = []
        for tile in layout.rows[r]:
            segments.extend(self._tile_line(layout, tile, offset))
            segments.append(Segment(" ", base))
        return Strip(segments).adjust_cell_length(width, base)

    def _tile_line(self, layout: _Layout, tile: int, offset: int) -> list[Segment]:
        highlighted = tile == self._item
        frame = HEAVY_FRAME if highlighted else LIGHT_FRAME
        frame_style = self.get_component_rich_style(
            "small-multiples--highlight" if highlighted else "small-multiples--frame"
        )
        inner = layout.inner_w
        if offset == 0:
            title_style = self.get_component_rich_style(
                "small-multiples--highlight" if highlighted else "small-multiples--title"
            )
            title = fit_cells(self._titles[tile], inner, ellipsis=False).rstrip()
            return [
                Segment(frame[0], frame_style),
                Segment(title, title_style),
                Segment(frame[1] * (inner - len(title)) + frame[2], frame_style),
            ]
        if offset == layout.outer_h - 1:
            return [Segment(frame[4] + frame[1] * inner + frame[5], frame_style)]
        line = offset - 1
        levels = layout.levels[tile]
        pixel_rows = levels.shape[0]
        pr0, pr1 = (2 * line) // layout.sy, (2 * line + 1) // layout.sy
        empty = np.full(levels.shape[1], self._ramp.empty, dtype=np.int16)
        upper = levels[pr0] if pr0 < pixel_rows else empty
        lower = levels[pr1] if pr1 < pixel_rows else empty
        return [
            Segment(frame[3], frame_style),
            *half_block_segments(upper, lower, layout.sx, self._styles),
            Segment(frame[3], frame_style),
        ]

    # --------------------------------------------------------------- moving

    def _scroll_to_item(self) -> None:
        layout = self._ensure_layout()
        if layout is None or self._item not in layout.positions:
            return
        x, y = layout.positions[self._item]
        top = y - 1 if (y - 1) in layout.captions else y
        self.scroll_to_region(Region(x, top, layout.outer_w, y + layout.outer_h - top), animate=False, immediate=True)

    # the CursorGrid hooks: one row of tiles in display order; up/down go to the nearest tile above/below
    def _order(self) -> list[int]:
        layout = self._ensure_layout()
        return [tile for row in layout.rows for tile in row] if layout is not None else []

    def grid_size(self) -> tuple[int, int]:
        return (1, self.count) if self._ensure_layout() is not None else (0, 0)

    @property
    def cursor_cell(self) -> tuple[int, int]:
        order = self._order()
        return (0, order.index(self._item)) if self._item in order else (0, 0)

    def _place_cursor(self, row: int, col: int) -> None:
        self.highlight(self._order()[col])

    def _post_moved(self) -> None:
        self.post_message(self.Highlighted(self, self._item))

    def step_cursor(self, d_row: int, d_col: int) -> None:
        if d_col or not d_row:
            super().step_cursor(0, d_col)
            return
        layout = self._ensure_layout()
        if layout is None:
            return
        r = next(i for i, row in enumerate(layout.rows) if self._item in row)
        column = layout.rows[r].index(self._item)
        target = r + d_row
        if 0 <= target < len(layout.rows):
            row = layout.rows[target]
            self.highlight(row[min(column, len(row) - 1)])

    def _post_selected(self) -> None:
        self.post_message(self.Selected(self, self._item))

    def tile_at(self, x: int, y: int) -> int | None:
        """The tile under content coordinates `(x, y)` of the (scrolled) canvas, if any."""
        layout = self._ensure_layout()
        if layout is None:
            return None
        for tile, (tx, ty) in layout.positions.items():
            if tx <= x < tx + layout.outer_w and ty <= y < ty + layout.outer_h:
                return tile
        return None

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        tile = self.tile_at(x, y)
        return (0, self._order().index(tile)) if tile is not None else None


__all__ = ["SmallMultiples", "gqa_groups", "Group"]
