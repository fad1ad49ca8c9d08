"""The heatmap's geometry and colour mapping as pure functions: no widget, no terminal."""

from __future__ import annotations

import numpy as np

from tui.components.heatmap import half_block_segments
from tui.components.heatmap_geometry import (
    compute_geometry,
    cursor_pixel,
    fit_grid,
    grid_line_levels,
    header_text,
    nice_at_least,
    pan_origin,
    pixel_at,
    row_gutter_width,
    row_label,
)
from tui.components.theme import HalfBlockStyles, get_ramp


def geometry(rows, cols, width=40, height=12, gutter=3, fit=None):
    data = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)
    ramp = get_ramp("sequential")
    choose = fit or (lambda r, c, ac, ah: fit_grid(r, c, ac, ah))
    return compute_geometry(data, width, height, title_lines=1, header_lines=1, gutter=gutter, choose_cell=choose,
                            reduce="max", ramp=ramp, limits=(0.0, float(rows * cols - 1))), ramp


def test_a_small_matrix_is_zoomed_by_an_integer_factor():
    geo, _ = geometry(4, 4)
    # 37 cells × 20 half-rows available: 4 cells per value (max_scale), 1:1 blocks
    assert (geo.row_factor, geo.col_factor, geo.sx, geo.sy) == (1, 1, 4, 4)
    assert geo.grid_y == 2 and geo.grid_lines == 10 and geo.grid_cols == 37
    assert (geo.vis_rows, geo.vis_cols) == (4, 4) and geo.pixels.shape == (4, 4)


def test_a_large_matrix_is_block_reduced_with_the_max():
    geo, _ = geometry(100, 60)
    assert geo.row_factor == geo.col_factor == 5 and geo.pixels.shape == (20, 12)
    data = np.arange(6000, dtype=np.float64).reshape(100, 60)
    assert geo.pixels[0, 0] == data[:5, :5].max() and geo.pixels[-1, -1] == data[95:, 55:].max()


def test_levels_follow_the_ramp_limits():
    geo, ramp = geometry(4, 4)
    assert geo.levels[0, 0] == ramp.quantise(np.array([0.0]), 0.0, 15.0)[0]
    assert geo.levels[-1, -1] == ramp.quantise(np.array([15.0]), 0.0, 15.0)[0] != geo.levels[0, 0]


def test_a_gutter_too_wide_for_the_widget_is_dropped():
    geo, _ = geometry(4, 4, width=4, gutter=3)
    assert geo.gutter == 0 and geo.grid_cols == 4


def test_mouse_to_pixel_uses_the_half_of_the_cell():
    geo, _ = geometry(100, 60)  # 1 cell × 1 half-row per pixel, gutter 3, grid from line 2
    assert pixel_at(geo, (0, 0), 3, 2, lower_half=False) == (0, 0)
    assert pixel_at(geo, (0, 0), 3, 2, lower_half=True) == (1, 0)
    assert pixel_at(geo, (0, 0), 7, 4, lower_half=True) == (5, 4)
    assert pixel_at(geo, (0, 0), 2, 4, lower_half=False) is None  # in the gutter
    assert pixel_at(geo, (0, 0), 3, 1, lower_half=False) is None  # the header
    assert pixel_at(geo, (0, 0), 3 + 12, 2, lower_half=False) is None  # right of the last pixel


def test_mouse_to_pixel_on_zoomed_pixels():
    geo, _ = geometry(4, 4)  # 4 cells × 4 half-rows (2 lines) per value
    assert pixel_at(geo, (0, 0), 3 + 5, 2 + 3, lower_half=True) == (1, 1)


def test_panning_shows_the_cursor_and_stays_inside():
    geo, _ = geometry(30, 30, width=13, height=7, gutter=3, fit=lambda r, c, ac, ah: (1, 1, 1, 1))
    assert (geo.vis_rows, geo.vis_cols) == (10, 10)
    assert pan_origin(geo, (0, 0), (5, 5)) == (0, 0)
    assert pan_origin(geo, (0, 0), (12, 25)) == (3, 16)
    assert pan_origin(geo, (15, 15), (2, 29)) == (2, 20)
    assert cursor_pixel(geo, (12, 25)) == (12, 25)


def test_header_labels_columns_or_puts_indices_at_nice_steps():
    geo, _ = geometry(4, 4)
    assert header_text(geo, 0, 4, ["a", "b", " c", "d"]).startswith("a   b   ·c  d")
    big, _ = geometry(100, 60)
    text = header_text(big, 0, 60, None)
    assert text.split() == ["0", "20", "40"] and text.index("20") == 4  # 3 cells a tick, 5 columns a pixel


def test_row_labels_mark_the_cursor_row_and_nice_indices():
    geo, _ = geometry(100, 60)
    assert row_label(geo, 0, 0, -1, 100, None) == (" 0", False)  # gutter 3: 2 cells of text, right-aligned
    assert row_label(geo, 0, 3, 7, 100, None) == ("35", True)  # line 3 holds pixels 6, 7: rows 30-39
    labels = [f"t{i}" for i in range(4)]
    zoomed, _ = geometry(4, 4)
    assert row_label(zoomed, 0, 2, 1, 4, labels) == ("t1", True)
    assert row_label(zoomed, 0, 1, 1, 4, labels) == ("  ", False)  # the second line of row 0


def test_grid_line_levels_paint_the_cursor():
    geo, ramp = geometry(4, 4, fit=lambda r, c, ac, ah: (1, 1, 1, 1))
    upper, lower = grid_line_levels(geo, (0, 0), 0, ramp.empty, ramp.cursor, (1, 2))
    assert list(upper) == list(geo.levels[0]) and lower[2] == ramp.cursor and lower[1] == geo.levels[1, 1]
    assert grid_line_levels(geo, (0, 0), 2, ramp.empty, ramp.cursor, None) is None


def test_half_block_segments_merge_equal_cells():
    ramp = get_ramp("sequential")
    styles = HalfBlockStyles(ramp, None)
    upper = np.array([3, 3, 5, ramp.empty], dtype=np.int16)
    lower = np.array([3, 3, 1, 2], dtype=np.int16)
    segments = half_block_segments(upper, lower, 2, styles)
    assert [s.text for s in segments] == ["▀▀▀▀", "▀▀", "▄▄"]


def test_small_helpers():
    assert [nice_at_least(n) for n in (1, 3, 6, 11, 120)] == [1, 5, 10, 20, 200]
    assert row_gutter_width(120, None, 10) == 4 and row_gutter_width(3, ["a", "long label"], 6) == 7
    assert row_gutter_width(3, None, 10, show=False) == 0
