"""The logit-lens view alone: layers × positions of top tokens; moving the cursor describes the cell."""

from __future__ import annotations

import pytest

from tui.components.lens_grid import LensGrid
from tui.views.lens import DEFAULT_PROMPT, LensView
from views.harness import ViewApp, settle

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


async def test_follows_chosen_tokens_through_the_layers(source):
    app = ViewApp(LensView(data_source=source))
    async with app.activated(size=(120, 50)) as pilot:
        track = app.view.query_one("#lens-track")
        track.value = "(|."
        track.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        tracks = source.data["lens_tracks"][f"{DEFAULT_PROMPT}|(|."]
        assert source.calls[-1] == ("lens_tracks", (DEFAULT_PROMPT, ["(", "."]), {})
        lines = str(app.view.query_one("#lens-tracks").render()).splitlines()
        assert len(lines) == 1 + len(tracks["readouts"])
        best = tracks["best"][0]
        row = tracks["readouts"].index({"layer": best["layer"], "stage": best["stage"]})
        assert f"'(' #{best['rank']} {best['prob']:.3f}*" in lines[1 + row]
        assert lines[1].startswith("L0 attn") and lines[2].startswith("L0 layer")
        assert app.view.export_data()["tracks"] is tracks
