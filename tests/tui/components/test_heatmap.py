"""The native half-block heatmap: exact cell mapping, masking, cursor, mouse, colours, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rich.color import ColorSystem
from textual.strip import Strip

from tui.components.heatmap import Heatmap, fit_grid
from tui.components.reduce import block_reduce
from tui.components.theme import DIVERGING, SEQUENTIAL

pytestmark = pytest.mark.anyio


def rgb(color) -> tuple[int, int, int] | None:  # noqa: ANN001
    return None if color is None else tuple(color.get_truecolor())


def ramp_rgb(values: np.ndarray, lo: float = 0.0, hi: float = 1.0, ramp=SEQUENTIAL) -> np.ndarray:  # noqa: ANN001
    """Expected colour of each value, as an (..., 3) array."""
    levels = ramp.quantise(values, lo, hi)
    table = np.array([rgb(ramp.color(i)) for i in range(ramp.masked + 1)])
    return table[levels]


async def test_two_matrix_rows_per_line_exact_cells(host, cells) -> None:  # noqa: ANN001
    m = np.linspace(0.0, 1.0, 35).reshape(7, 5)  # odd row count: last line has no lower pixel
    hm = Heatmap(m, vmin=0, vmax=1, max_scale=1, show_row_labels=False)
    app = host(hm)
    async with app.run_host() as pilot:
        await pilot.pause()
        expected = ramp_rgb(m)
        background = rgb(hm.rich_style.bgcolor)
        for line in range(4):
            row = cells(hm.render_line(2 + line))  # title + header come first
            for col in range(5):
                ch, style = row[col]
                assert ch == "▀"
                upper = 2 * line
                want_fg = tuple(expected[upper, col]) if (upper, col) != (0, 0) else rgb(SEQUENTIAL.cursor_color)
                assert rgb(style.color) == want_fg, (line, col)
                want_bg = tuple(expected[upper + 1, col]) if upper + 1 < 7 else background
                assert rgb(style.bgcolor) == want_bg, (line, col)
            assert row[5][0] == " "  # nothing drawn right of the matrix
        assert "7×5" in hm.render_line(0).text


async def test_small_matrix_is_scaled_by_an_integer_without_gaps(host, cells) -> None:  # noqa: ANN001
    m = np.random.default_rng(0).uniform(size=(12, 12))
    hm = Heatmap(m, vmin=0, vmax=1, show_row_labels=False, show_cursor=False)
    app = host(hm)
    async with app.run_host(size=(120, 40)) as pilot:
        await pilot.pause()
        geo = hm._get_geometry()
        assert geo is not None and geo.sx == geo.sy == 4 and geo.row_factor == 1
        expected = ramp_rgb(m)
        for line in range(24):
            row = cells(hm.render_line(geo.grid_y + line))
            for x in range(48):
                ch, style = row[x]
                assert ch == "▀"
                assert rgb(style.color) == tuple(expected[(2 * line) // 4, x // 4])
                assert rgb(style.bgcolor) == tuple(expected[(2 * line + 1) // 4, x // 4])
            assert row[48][0] == " "


async def test_large_matrix_is_block_reduced_to_fit(host, cells) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    m = rng.uniform(size=(512, 512)) ** 8
    hm = Heatmap(m, vmin=0, vmax=1, show_row_labels=False, show_cursor=False)
    app = host(hm)
    async with app.run_host(size=(120, 40)) as pilot:
        await pilot.pause()
        geo = hm._get_geometry()
        assert geo is not None
        f = geo.row_factor
        assert f == geo.col_factor > 1  # same factor on both axes (keep_aspect)
        assert -(-512 // f) <= geo.grid_cols and -(-512 // f) <= 2 * geo.grid_lines
        assert "block max" in hm.render_line(0).text
        for pr, pc in [(0, 0), (3, 10), (40, 60), (-(-512 // f) - 1, -(-512 // f) - 1)]:
            block_max = m[pr * f : (pr + 1) * f, pc * f : (pc + 1) * f].max()
            ch, style = cells(hm.render_line(geo.grid_y + pr // 2))[pc]
            color = style.color if pr % 2 == 0 else style.bgcolor
            assert rgb(color) == tuple(ramp_rgb(np.array([block_max]))[0])


async def test_nan_and_minus_inf_are_drawn_masked(host, cells) -> None:  # noqa: ANN001
    m = np.tril(np.full((6, 6), 0.5))
    m[np.triu_indices(6, 1)] = -np.inf  # masked attention scores
    m[5, 0] = np.nan
    hm = Heatmap(m, vmin=0, vmax=1, max_scale=1, show_row_labels=False)
    app = host(hm)
    async with app.run_host() as pilot:
        await pilot.pause()
        masked = rgb(SEQUENTIAL.masked_color)
        _, style = cells(hm.render_line(2))[3]  # rows 0-1, column 3: above the diagonal
        assert rgb(style.color) == masked and rgb(style.bgcolor) == masked
        _, style = cells(hm.render_line(4))[0]  # rows 4-5, column 0: lower one is NaN
        assert rgb(style.bgcolor) == masked
        hm.focus()
        await pilot.press("right", "right")
        await pilot.pause()
        message = app.of_type(Heatmap.CursorMoved)[-1]
        assert (message.row, message.col) == (0, 2) and message.masked
        assert "masked" in hm.render_line(0).text


async def test_keys_move_cursor_and_post_values(host) -> None:  # noqa: ANN001
    m = np.arange(100, dtype=float).reshape(10, 10) / 100
    pieces = [f"t{i}" for i in range(10)]
    hm = Heatmap(m, row_labels=pieces, col_labels=pieces, row_axis="query", col_axis="key", vmin=0, vmax=1)
    app = host(hm)
    async with app.keys(hm, "down", "down", "right", "j", "l") as pilot:
        moved = app.of_type(Heatmap.CursorMoved)
        assert [(m_.row, m_.col) for m_ in moved] == [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2)]
        last = moved[-1]
        assert last.value == pytest.approx(0.32)
        assert (last.row_label, last.col_label) == ("t3", "t2")
        assert hm.cursor == (3, 2)
        assert "query 3 't3' → key 2 't2': 0.32" in hm.render_line(0).text
        await pilot.press("k", "h", "enter")
        await pilot.pause()
        selected = app.of_type(Heatmap.CellSelected)
        assert [(s.row, s.col, s.value) for s in selected] == [(2, 1, pytest.approx(0.21))]


async def test_mouse_hover_moves_cursor_and_click_selects(host) -> None:  # noqa: ANN001
    m = np.arange(100, dtype=float).reshape(10, 10)
    hm = Heatmap(m, show_row_labels=False)
    app = host(hm)
    async with app.run_host() as pilot:
        await pilot.pause()
        geo = hm._get_geometry()
        assert geo is not None and geo.sx == 4 and geo.sy == 4  # 4 cells × 2 lines per value
        await pilot.hover(hm, offset=(4 * 3 + 1, geo.grid_y + 2 * 5))
        await pilot.pause()
        assert hm.cursor == (5, 3)
        assert app.of_type(Heatmap.CursorMoved)[-1].value == 53
        await pilot.click(hm, offset=(4 * 7, geo.grid_y + 2 * 1 + 1))
        await pilot.pause()
        selected = app.of_type(Heatmap.CellSelected)
        assert [(s.row, s.col, s.value) for s in selected] == [(1, 7, 17)]


async def test_renders_with_a_256_colour_console(host) -> None:  # noqa: ANN001
    """Colours are Rich truecolor `Color`s, which Rich/Textual downgrade for 256/16-colour terminals.

    `Strip.render_ansi(style, system)` is what Textual's output uses per colour system (cached per
    system; `Strip.render` would reuse the first system's codes cached on the style).
    """
    m = np.random.default_rng(0).normal(size=(16, 16))
    hm = Heatmap(m, ramp="diverging")
    app = host(hm)
    async with app.run_host() as pilot:
        await pilot.pause()
        strip = hm.render_line(hm._get_geometry().grid_y + 1)
        blocks = [seg.style for seg in strip if seg.text.startswith("▀") and seg.style is not None]
        assert blocks
        for style in blocks:
            assert "38;2;" in Strip.render_ansi(style, ColorSystem.TRUECOLOR)
            eight_bit = Strip.render_ansi(style, ColorSystem.EIGHT_BIT)
            assert "38;5;" in eight_bit and "48;5;" in eight_bit and ";2;" not in eight_bit
            standard = Strip.render_ansi(style, ColorSystem.STANDARD)
            assert "38;5;" not in standard and ";2;" not in standard
        # the 256-colour fallback still tells values apart
        downgraded = {c.downgrade(ColorSystem.EIGHT_BIT).number for c in DIVERGING.colors}
        assert len(downgraded) >= 16
        assert hm.limits[0] == -hm.limits[1]  # diverging: symmetric
        assert hm.ramp is DIVERGING


async def test_64x64_renders_fast(host) -> None:  # noqa: ANN001
    m = np.random.default_rng(0).uniform(size=(64, 64))
    hm = Heatmap(m, vmin=0, vmax=1, row_labels=[f"tok{i}" for i in range(64)])
    app = host(hm)
    async with app.run_host() as pilot:
        await pilot.pause()
        best = float("inf")
        for _ in range(3):
            hm._invalidate()
            start = time.perf_counter()
            for y in range(hm.size.height):
                hm.render_line(y)
            best = min(best, time.perf_counter() - start)
        # ~5 ms on an idle core; generous bound because CI machines are shared
        assert best < 0.25, f"64×64 render took {best * 1000:.1f} ms"


@pytest.mark.parametrize("size", [(80, 24), (20, 6), (6, 3)])
async def test_small_hosts_do_not_crash(host, size) -> None:  # noqa: ANN001
    m = np.random.default_rng(0).uniform(size=(64, 64))
    m[0, 1] = np.nan
    hm = Heatmap(m, row_labels=[f" tok{i}" for i in range(64)], col_labels=[str(i) for i in range(64)])
    app = host(hm)
    async with app.keys(hm, "down", "right", "end", "pagedown", size=size):
        for y in range(hm.size.height):
            assert hm.render_line(y).cell_length == hm.size.width


async def test_crop_mode_pans_with_the_cursor(host, cells) -> None:  # noqa: ANN001
    m = np.random.default_rng(0).uniform(size=(100, 100))
    hm = Heatmap(m, vmin=0, vmax=1, fit="crop", show_row_labels=False)
    app = host(hm)
    async with app.keys(hm, "end", "pagedown", size=(80, 24)):
        geo = hm._get_geometry()
        assert geo is not None and geo.row_factor == 1 and geo.vis_cols == 80
        assert hm._origin == (hm.cursor[0] - geo.vis_rows + 1, 100 - 80)
        assert "cropped" in hm.render_line(0).text
        # the last visible column shows matrix column 99, the cursor is drawn in it
        line = (hm.cursor[0] - hm._origin[0]) // 2
        _, style = cells(hm.render_line(geo.grid_y + line))[79]
        half = style.color if (hm.cursor[0] - hm._origin[0]) % 2 == 0 else style.bgcolor
        assert rgb(half) == rgb(SEQUENTIAL.cursor_color)
        _, other = cells(hm.render_line(geo.grid_y + line))[0]
        expected = ramp_rgb(m[hm._origin[0] + 2 * line : hm._origin[0] + 2 * line + 2, 20])
        assert (rgb(other.color), rgb(other.bgcolor)) == (tuple(expected[0]), tuple(expected[1]))


async def test_set_matrix_posts_cursor_and_checks_labels(host) -> None:  # noqa: ANN001
    hm = Heatmap()
    app = host(hm)
    async with app.run_host() as pilot:
        hm.set_matrix(np.eye(3), title="L0 H0")
        await pilot.pause()
        assert app.of_type(Heatmap.CursorMoved)[-1].value == 1.0
        assert hm.render_line(0).text.startswith("L0 H0")
        block = block_reduce(np.eye(3), 1, 1, "max")
        assert block.shape == (3, 3)
        with pytest.raises(ValueError):
            hm.set_matrix(np.eye(3), row_labels=["a"])


def test_fit_grid_chooses_square_pixels_and_integer_factors() -> None:
    assert fit_grid(12, 12, 100, 60, max_scale=4) == (1, 1, 4, 4)
    assert fit_grid(512, 512, 100, 60) == (9, 9, 1, 1)
    assert fit_grid(512, 512, 100, 60, keep_aspect=False) == (9, 6, 1, 1)
    assert fit_grid(7, 28, 100, 20, cell=(3, 2)) == (1, 1, 3, 2)
