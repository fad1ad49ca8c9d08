"""The heatmap's geometry as pure functions: pixel sizes, block factors, panning, label layout and the
mouse → pixel mapping. No widget, no terminal: each is a function of numbers, tested on its own
(tests/tui/components/test_heatmap_geometry.py); `Heatmap` only calls them with its size and state.

Vocabulary: a *pixel* is one block of the matrix (`row_factor × col_factor` values, 1×1 when the matrix
fits) drawn `sx` cells wide and `sy` half-lines tall; a terminal line holds two half-lines (`▀`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rich.cells import cell_len

from tui.components.reduce import BlockReduce, block_reduce
from tui.components.theme import Ramp, fit_cells, visible_piece

#: `(rows, cols, avail_cols, avail_half_rows) -> (row_factor, col_factor, sx, sy)`.
ChooseCell = Callable[[int, int, int, int], tuple[int, int, int, int]]


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


@dataclass
class HeatmapGeometry:
    """Everything a heatmap's lines need for one widget size and one matrix (recomputed on change)."""

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


def row_gutter_width(rows: int, row_labels: Sequence[str] | None, label_width: int, show: bool = True) -> int:
    """Width of the row-label column plus its separating space (0 when row labels are hidden)."""
    if not show:
        return 0
    if row_labels is not None:
        widest = max((cell_len(visible_piece(label)) for label in row_labels), default=1)
        return min(label_width, widest) + 1
    return len(str(max(0, rows - 1))) + 1


def compute_geometry(
    data: np.ndarray,
    width: int,
    height: int,
    *,
    title_lines: int,
    header_lines: int,
    gutter: int,
    choose_cell: ChooseCell,
    reduce: BlockReduce,
    ramp: Ramp,
    limits: tuple[float, float],
) -> HeatmapGeometry:
    """Lay `data` out in a `width × height` widget: block factors, pixel size, what is visible, colours."""
    rows, cols = data.shape
    if gutter >= width - 1:
        gutter = 0
    grid_cols = max(1, width - gutter)
    grid_lines = max(1, height - title_lines - header_lines)
    fr, fc, sx, sy = choose_cell(rows, cols, grid_cols, 2 * grid_lines)
    pixels = block_reduce(data, fr, fc, reduce)
    levels = ramp.quantise(pixels, *limits)
    vis_rows = min(pixels.shape[0], max(1, (2 * grid_lines) // sy))
    vis_cols = min(pixels.shape[1], max(1, grid_cols // sx))
    return HeatmapGeometry(width, height, title_lines + header_lines, gutter, grid_cols, grid_lines,
                           fr, fc, sx, sy, pixels, levels, vis_rows, vis_cols)


def cursor_pixel(geo: HeatmapGeometry, cursor: tuple[int, int]) -> tuple[int, int]:
    """The pixel holding matrix cell `cursor`."""
    return cursor[0] // geo.row_factor, cursor[1] // geo.col_factor


def pan_origin(geo: HeatmapGeometry, origin: tuple[int, int], pixel: tuple[int, int]) -> tuple[int, int]:
    """The first visible pixel after panning (crop mode) the least that shows `pixel`."""
    pr, pc = pixel
    orow, ocol = origin
    orow = min(max(orow, pr - geo.vis_rows + 1), pr)
    ocol = min(max(ocol, pc - geo.vis_cols + 1), pc)
    orow = max(0, min(orow, geo.pixels.shape[0] - geo.vis_rows))
    ocol = max(0, min(ocol, geo.pixels.shape[1] - geo.vis_cols))
    return orow, ocol


def pixel_at(geo: HeatmapGeometry, origin: tuple[int, int], x: int, y: int, lower_half: bool) -> tuple[int, int] | None:
    """The pixel drawn at content cell `(x, y)`; `lower_half`: the pointer is in the lower half of the cell."""
    gx, gy = x - geo.gutter, y - geo.grid_y
    if gx < 0 or gy < 0 or gy >= geo.grid_lines:
        return None
    pr = origin[0] + (2 * gy + int(lower_half)) // geo.sy
    pc = origin[1] + gx // geo.sx
    if pr >= origin[0] + geo.vis_rows or pc >= origin[1] + geo.vis_cols:
        return None
    return pr, pc


def nice_at_least(minimum: int) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... that is ≥ `minimum`."""
    step = 1
    while True:
        for mult in (1, 2, 5):
            if step * mult >= minimum:
                return step * mult
        step *= 10


def header_text(geo: HeatmapGeometry, origin_col: int, cols: int, col_labels: Sequence[str] | None) -> str:
    """The column header line over the grid (`grid_cols` wide): labels when each fits a pixel, else
    indices at "nice" steps that never collide."""
    chars = [" "] * geo.grid_cols
    if col_labels is not None and geo.col_factor == 1 and geo.sx >= 3:
        for i in range(geo.vis_cols):
            text = fit_cells(visible_piece(col_labels[origin_col + i]), geo.sx - 1)
            x = i * geo.sx
            for j, ch in enumerate(text):
                if x + j < geo.grid_cols:
                    chars[x + j] = ch
        return "".join(chars)
    digits = len(str(max(0, cols - 1))) + 1
    pixels_per_tick = math.ceil(digits / geo.sx)
    step = nice_at_least(pixels_per_tick * geo.col_factor)
    last_end = -1
    for m in range(0, cols, step):
        x = (m // geo.col_factor - origin_col) * geo.sx
        label = str(m)
        if x < 0 or x + len(label) > geo.grid_cols or x <= last_end:
            continue
        chars[x : x + len(label)] = label
        last_end = x + len(label)
    return "".join(chars)


def row_label(
    geo: HeatmapGeometry, origin_row: int, line: int, cursor_row_pixel: int, rows: int,
    row_labels: Sequence[str] | None,
) -> tuple[str, bool]:
    """Gutter text for grid line `line`, and whether it is the cursor's row (`cursor_row_pixel`, -1: none).

    Only pixel rows that *start* on this line are labelled (a zoomed row spanning several lines is
    labelled once); with two rows per line the cursor's row wins, else the upper one. Plain indices are
    shown only at "nice" rows.
    """
    top = origin_row + geo.vis_rows
    starting = [
        origin_row + half // geo.sy
        for half in (2 * line, 2 * line + 1)
        if half % geo.sy == 0 and origin_row + half // geo.sy < top
    ]
    width = geo.gutter - 1
    if not starting:
        return " " * width, False
    on_cursor = cursor_row_pixel in starting
    pixel_row = cursor_row_pixel if on_cursor else starting[0]
    row = pixel_row * geo.row_factor
    if row_labels is not None:
        return fit_cells(visible_piece(row_labels[row]), width, align="right"), on_cursor
    if on_cursor:
        return fit_cells(str(row), width, align="right"), True
    rows_per_line = 2 * geo.row_factor / geo.sy
    step = nice_at_least(math.ceil(2 * rows_per_line))
    first = starting[0] * geo.row_factor
    last = (starting[-1] + 1) * geo.row_factor
    mark = -(-first // step) * step
    if mark < min(last, rows):
        return fit_cells(str(mark), width, align="right"), False
    return " " * width, False


def grid_line_levels(
    geo: HeatmapGeometry, origin: tuple[int, int], line: int, empty: int, cursor_level: int,
    cursor: tuple[int, int] | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Ramp indices of the upper and lower half-rows drawn on grid line `line` (the cursor pixel, if given,
    painted `cursor_level`); None below the last pixel row."""
    orow, ocol = origin
    top = orow + geo.vis_rows
    pr0 = orow + (2 * line) // geo.sy
    pr1 = orow + (2 * line + 1) // geo.sy
    if pr0 >= top:
        return None
    cols = slice(ocol, ocol + geo.vis_cols)
    upper = geo.levels[pr0, cols].copy()
    lower = geo.levels[pr1, cols].copy() if pr1 < top else np.full(geo.vis_cols, empty, dtype=np.int16)
    if cursor is not None:
        cr, cc = cursor
        if ocol <= cc < ocol + geo.vis_cols:
            if cr == pr0:
                upper[cc - ocol] = cursor_level
            if cr == pr1 and pr1 < top:
                lower[cc - ocol] = cursor_level
    return upper, lower


__all__ = ["HeatmapGeometry", "compute_geometry", "cursor_pixel", "fit_grid", "grid_line_levels", "header_text",
           "nice_at_least", "pan_origin", "pixel_at", "row_gutter_width", "row_label"]
