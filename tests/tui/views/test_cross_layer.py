"""The cross-layer view alone: lines and heat strip from the data source; Enter opens a tensor (OpenNode)."""

from __future__ import annotations

import pytest

from tui.components.heat_strip import HeatStrip
from tui.components.lineplot import LinePlot
from tui.messages import OpenNode, Progress
from tui.views.cross_layer import CrossLayerView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio


async def test_draws_every_component_and_opens_a_tensor(source):
    app = ViewApp(CrossLayerView(data_source=source))
    async with app.activated() as pilot:
        data = source.data["cross_layer"]
        assert app.view.data is data
        plot = app.view.query_one(LinePlot)
        assert plot.selected == ("q", 0) and app.focused is plot
        strip = app.view.query_one(HeatStrip)
        assert strip.components == [c for c in data["components"] if c != "norm"]
        # the progress it reported is drawn in the view only, not in the status bar
        progress = app.of(Progress)
        assert progress and not progress[0].status
        await pilot.press("right", "down", "enter")  # layer 1 of the second series (k)
        await settle(app, pilot)
        opened = app.of(OpenNode)
        assert [m.name for m in opened] == [data["names"]["k"][1]] and opened[0].select_in_tree


async def test_m_cycles_the_statistic(source):
    app = ViewApp(CrossLayerView(data_source=source))
    async with app.activated() as pilot:
        await pilot.press("m")
        await pilot.pause()
        assert app.view.metric == "rms" and "rms of each weight" in screen_text(app)
