"""The logit-lens view alone: layers × positions of top tokens; moving the cursor describes the cell."""

from __future__ import annotations

import pytest

from tui.components.lens_grid import LensGrid
from tui.views.lens import DEFAULT_PROMPT, LensView
from views.harness import ViewApp

pytestmark = pytest.mark.anyio


async def test_draws_the_lens_and_describes_the_cursor_cell(source):
    app = ViewApp(LensView(data_source=source))
    async with app.activated() as pilot:
        data = source.data["lens"][DEFAULT_PROMPT]
        grid = app.view.query_one(LensGrid)
        assert grid.shape == (len(data["layers"]), len(data["tokens"])) and app.focused is grid
        await pilot.press("down", "right")
        await pilot.pause()
        info = str(app.view.query_one("#lens-info").render())
        top = data["layers"][1]["top_tokens"][1][0]
        assert info.startswith(f"layer {data['layers'][1].get('layer', 1)}, after {data['tokens'][1]!r}") and repr(top) in info
