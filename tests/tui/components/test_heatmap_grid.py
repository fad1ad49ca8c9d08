"""Small multiples: grouped tiles (GQA), highlight, selection by key and click."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.heatmap_grid import SmallMultiples, gqa_groups
from tui.components.theme import SEQUENTIAL

pytestmark = pytest.mark.anyio


def heads(n: int = 12, size: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        m = rng.uniform(size=(size, size))
        m[np.triu_indices(size, 1)] = np.nan
        out.append(m)
    return out


def test_gqa_groups() -> None:
    assert gqa_groups(12, 2) == [("KV head 0: heads 0-5", [0, 1, 2, 3, 4, 5]), ("KV head 1: heads 6-11", [6, 7, 8, 9, 10, 11])]
    assert gqa_groups(4, 4) == [("", [0, 1, 2, 3])]
    assert gqa_groups(4, None) == [("", [0, 1, 2, 3])]


async def test_groups_captions_tiles_and_keys(host, lines) -> None:  # noqa: ANN001
    sm = SmallMultiples(heads(), groups=gqa_groups(12, 2), vmin=0, vmax=1)
    app = host(sm)
    async with app.run_host() as pilot:
        sm.focus()
        await pilot.pause()
        text = lines(sm)
        assert text[0].startswith("KV head 0: heads 0-5")
        assert any(line.startswith("KV head 1: heads 6-11") for line in text)
        assert "┏h0" in text[1] and "╭h1" in text[1]  # h0 highlighted (heavy frame)
        await pilot.press("right", "right", "down")
        await pilot.pause()
        assert sm.highlighted == 8
        assert [m.index for m in app.of_type(SmallMultiples.Highlighted)] == [1, 2, 8]
        await pilot.press("enter")
        await pilot.pause()
        assert [m.index for m in app.of_type(SmallMultiples.Selected)] == [8]


async def test_tiles_draw_the_matrix_with_the_shared_scale(host, cells) -> None:  # noqa: ANN001
    mats = heads(3, 8)
    sm = SmallMultiples(mats, vmin=0, vmax=1, tile_width=8)
    app = host(sm)
    async with app.run_host() as pilot:
        await pilot.pause()
        layout = sm._ensure_layout()
        assert layout is not None and (layout.fr, layout.sx) == (1, 1) and layout.inner_w == 8
        levels = SEQUENTIAL.quantise(mats[1], 0, 1)
        row = cells(sm.render_line(1))  # first grid line (line 0 is the top frame)
        x0 = layout.positions[1][0] + 1
        for col in range(8):
            ch, style = row[x0 + col]
            assert ch == "▀"
            assert style.color.get_truecolor() == SEQUENTIAL.color(int(levels[0, col])).get_truecolor()
            assert style.bgcolor.get_truecolor() == SEQUENTIAL.color(int(levels[1, col])).get_truecolor()


async def test_click_selects_a_tile(host) -> None:  # noqa: ANN001
    sm = SmallMultiples(heads(6, 16), groups=gqa_groups(6, 2), vmin=0, vmax=1)
    app = host(sm)
    async with app.run_host(size=(80, 24)) as pilot:
        await pilot.pause()
        layout = sm._ensure_layout()
        assert layout is not None
        x, y = layout.positions[4]
        await pilot.click(sm, offset=(x + 2, y + 2))
        await pilot.pause()
        assert sm.highlighted == 4
        assert [m.index for m in app.of_type(SmallMultiples.Selected)] == [4]


async def test_many_heads_scroll_in_a_small_host(host) -> None:  # noqa: ANN001
    sm = SmallMultiples(heads(32, 16), groups=gqa_groups(32, 8), vmin=0, vmax=1, tile_width=16)
    app = host(sm)
    async with app.keys(sm, "end", "down", "down", "down", "down", "down", size=(80, 24)):
        assert sm.virtual_size.height > 24
        assert sm.scroll_offset.y > 0  # scrolled to keep the highlighted tile visible
        for y in range(sm.size.height):
            sm.render_line(y)
        with pytest.raises(ValueError):
            sm.set_matrices(heads(3, 4), groups=[("a", [0, 1])])
