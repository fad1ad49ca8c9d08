"""The attention view alone: the head's heatmap and every head grouped by KV head; , . change layer."""

from __future__ import annotations

import pytest

from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples
from tui.messages import Progress
from tui.views.attention import DEFAULT_PROMPT, AttentionView
from views.harness import ViewApp, settle, screen_text

pytestmark = pytest.mark.anyio


async def test_draws_the_layer_and_steps_layers_and_heads(source):
    view = AttentionView(data_source=source)
    view.set_model(source.data["summary"])
    app = ViewApp(view)
    async with app.run_test(size=(140, 40)) as pilot:
        view.activate()
        await settle(app, pilot)
        data = source.data["attention"]["0"]
        assert view.data is data and source.calls[0][1] == (DEFAULT_PROMPT, 0)
        grid = view.query_one(SmallMultiples)
        assert grid.count == data["num_heads"] and len(grid.groups) == data["num_key_value_heads"]
        head = view.query_one("#attention-head", Heatmap)
        assert head.matrix.shape == (data["num_tokens"], data["num_tokens"])
        assert "KV head 0" in screen_text(app)
        assert app.of(Progress) and app.of(Progress)[0].status  # the model loading shows in the status bar
        head.focus()
        await pilot.press("full_stop", "equals_sign")
        await settle(app, pilot)
        assert view.data["layer"] == 1 and view.head_idx == 1 and grid.highlighted == 1
        assert "L1 H1" in screen_text(app)


async def test_picking_a_tile_draws_that_head(source):
    view = AttentionView(data_source=source)
    view.set_model(source.data["summary"])
    app = ViewApp(view)
    async with app.run_test(size=(140, 40)) as pilot:
        view.activate()
        await settle(app, pilot)
        view.query_one(SmallMultiples).focus()
        await pilot.press("right", "right", "enter")
        await pilot.pause()
        assert view.head_idx == 2 and "H2" in screen_text(app)


async def test_sink_heads_are_marked(source):
    """A fake answer in which head 4 puts 0.8 of its attention on the first token: it is marked a sink."""
    from internals.worker.ops.forward import sink_shares

    data = dict(source.data["attention"]["0"])
    data["sink_share"] = sink_shares(data)
    data["sink_share"][4] = 0.8
    source.data = {**source.data, "attention": {"0": data}}
    view = AttentionView(data_source=source)
    view.set_model(source.data["summary"])
    app = ViewApp(view)
    async with app.run_test(size=(140, 40)) as pilot:
        view.activate()
        await settle(app, pilot)
        assert view.sink_heads() == [4]
        assert view.query_one(SmallMultiples)._titles[4] == "h4 sink"
        assert all("sink" not in t for i, t in enumerate(view.query_one(SmallMultiples)._titles) if i != 4)
        assert "h4 sink" in screen_text(app) and "⚓" not in screen_text(app)
        view.query_one("#attention-head", Heatmap).focus()
        await pilot.press("equals_sign", "equals_sign", "equals_sign", "equals_sign")
        assert view.head_idx == 4 and "L0 H4 (KV 1) ⚓0.80" in screen_text(app)
