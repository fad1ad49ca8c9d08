"""The cursor base every cell-addressed widget shares: bindings with stable ids, clamping, mouse, messages."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widget import Widget

from tui.components import cursor_grid
from tui.components.cursor_grid import CursorGrid, clamp, cursor_bindings
from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples
from tui.components.lens_grid import LensGrid
from tui.components.lineplot import LinePlot
from tui.components.tokens import TokenStrip

pytestmark = pytest.mark.anyio


def binding_ids(cls) -> dict[str, str]:
    return {b.id: b.key for b in cls.BINDINGS}


def test_binding_ids_are_the_ones_users_remap():
    assert binding_ids(Heatmap) == {
        "heatmap.cursor_up": "up,k", "heatmap.cursor_down": "down,j", "heatmap.cursor_left": "left,h",
        "heatmap.cursor_right": "right,l", "heatmap.cursor_home": "home", "heatmap.cursor_end": "end",
        "heatmap.page_up": "pageup", "heatmap.page_down": "pagedown", "heatmap.select": "enter"}
    assert set(binding_ids(LensGrid)) == {f"lens_grid.{m}" for m in cursor_grid.MOVES}
    assert set(binding_ids(SmallMultiples)) == {f"small_multiples.{m}" for m in ("left", "right", "up", "down", "select")}
    assert set(binding_ids(TokenStrip)) == {
        f"tokens.{m}" for m in ("left", "right", "up", "down", "home", "end", "pick", "toggle_ids")
    }
    assert set(binding_ids(LinePlot)) == {
        f"lineplot.{m}" for m in ("left", "right", "home", "end", "series_up", "series_down", "open")
    }


def test_every_cell_widget_uses_the_base():
    for cls in (Heatmap, LensGrid, SmallMultiples, TokenStrip, LinePlot):
        assert issubclass(cls, CursorGrid)
        assert "action_cursor" not in cls.__dict__ and "on_click" not in cls.__dict__


def test_clamp_and_custom_ids():
    assert (clamp(-3, 0, 5), clamp(9, 0, 5), clamp(2, 0, 5)) == (0, 5, 2)
    bindings = cursor_bindings("demo", ("up", "select"), ids={"select": "open"}, descriptions={"up": "Higher"})
    assert [(b.id, b.action, b.description) for b in bindings] == [("demo.up", "cursor(-1, 0)", "Higher"),
                                                                    ("demo.open", "select_cell", "Select")]


class Board(CursorGrid, Widget, can_focus=True):
    """A 3 × 4 board of 2-cell-wide cells, the smallest user of the base."""

    BINDINGS = cursor_bindings("board")

    def __init__(self) -> None:
        super().__init__()
        self.cursor = (0, 0)

    def grid_size(self):
        return 3, 4

    @property
    def cursor_cell(self):
        return self.cursor

    def _place_cursor(self, row, col):
        if (row, col) != self.cursor:
            self.cursor = (row, col)
            self.post_message(cursor_grid.CursorMoved(self, row, col))

    def _post_selected(self):
        self.post_message(cursor_grid.CellSelected(self, *self.cursor))

    def cell_at(self, x, y):
        return (y, x // 2) if y < 3 and x < 8 else None

    def page_size(self):
        return 2


class BoardApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.board = Board()
        self.messages = []

    def compose(self) -> ComposeResult:
        yield self.board

    def on_cursor_moved(self, message) -> None:
        self.messages.append(("moved", message.row, message.col))

    def on_cell_selected(self, message) -> None:
        self.messages.append(("selected", message.row, message.col))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_keys_clamp_and_select_and_a_click_picks_the_cell():
    app = BoardApp()
    async with app.run_test(size=(20, 6)) as pilot:
        app.board.focus()
        await pilot.press("up", "left", "end", "pagedown", "pagedown", "enter", "home", "k")
        await pilot.pause()
        assert app.messages == [("moved", 0, 3), ("moved", 2, 3), ("selected", 2, 3), ("moved", 2, 0), ("moved", 1, 0)]
        app.messages.clear()
        await pilot.click(Board, offset=(5, 2))
        await pilot.pause()
        assert app.messages == [("moved", 2, 2), ("selected", 2, 2)]
