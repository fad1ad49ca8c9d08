"""Logit-lens grid: truncated pieces, probability backgrounds, cursor, panning."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.lens_grid import LensGrid
from tui.components.theme import SEQUENTIAL

pytestmark = pytest.mark.anyio


def lens(layers: int = 5, positions: int = 4) -> tuple[list[list[str]], np.ndarray]:
    pieces = [[f" tok{layer}_{pos}_long" for pos in range(positions)] for layer in range(layers)]
    probs = np.linspace(0.0, 1.0, layers * positions).reshape(layers, positions)
    return pieces, probs


async def test_cells_show_truncated_pieces_on_probability_colours(host, cells, lines) -> None:  # noqa: ANN001
    pieces, probs = lens()
    probs[2, 1] = np.nan
    grid = LensGrid(pieces, probs, input_pieces=["a", " b", "\n", "d"], cell_width=8)
    app = host(grid)
    async with app.run_host() as pilot:
        await pilot.pause()
        text = lines(grid)
        assert text[1].split() == ["a", "·b", "↵", "d"]
        gutter = grid._gutter
        row = cells(grid.render_line(2 + 1))  # layer 1
        cell = row[gutter + 8 * 2 : gutter + 8 * 2 + 7]  # position 2
        assert "".join(ch for ch, _ in cell) == "·tok1_…"
        level = int(SEQUENTIAL.quantise(np.array([probs[1, 2]]), 0.0, 1.0)[0])
        assert cell[0][1].bgcolor.get_truecolor() == SEQUENTIAL.color(level).get_truecolor()
        masked = cells(grid.render_line(2 + 2))[gutter + 8]
        assert masked[1].bgcolor.get_truecolor() == SEQUENTIAL.masked_color.get_truecolor()


async def test_keys_move_cursor_and_post_layer_and_position(host) -> None:  # noqa: ANN001
    pieces, probs = lens()
    grid = LensGrid(pieces, probs, layers=[0, 1, 2, 3, "final"])
    app = host(grid)
    async with app.keys(grid, "down", "right", "j", "end", "pagedown", "enter"):
        moved = app.of_type(LensGrid.CursorMoved)
        assert [(m.row, m.position) for m in moved] == [(1, 0), (1, 1), (2, 1), (2, 3), (4, 3)]
        selected = app.of_type(LensGrid.CellSelected)
        assert [(s.layer, s.position, s.piece) for s in selected] == [("final", 3, " tok4_3_long")]
        assert selected[0].prob == pytest.approx(1.0)
        assert "layer final · pos 3" in grid.render_line(0).text


async def test_pans_when_there_are_more_positions_than_fit(host) -> None:  # noqa: ANN001
    pieces, probs = lens(40, 60)
    grid = LensGrid(pieces, probs, cell_width=6)
    app = host(grid)
    async with app.keys(grid, "end", "pagedown", size=(80, 24)) as pilot:
        vis_rows, vis_cols = grid._visible
        assert grid.cursor == (vis_rows, 59)
        assert grid._origin == (1, 60 - vis_cols)
        last_line = grid.render_line(2 + vis_rows - 1).text
        assert last_line.split()[0] == str(vis_rows)  # the cursor's layer is the last visible row
        assert last_line.split()[1] == "·tok…"  # " tok22_…_long" cut to 5 cells
        await pilot.click(grid, offset=(grid._gutter + 1, 3))
        await pilot.pause()
        assert grid.cursor == (2, 60 - vis_cols)
        assert app.of_type(LensGrid.CellSelected)[-1].position == 60 - vis_cols
