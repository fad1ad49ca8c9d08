"""The activations view alone: residual norms as a layers × positions heatmap, the largest activations
listed, the sink heads named."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.heatmap import Heatmap
from tui.views.activations import DEFAULT_PROMPT, ActivationsView
from views.harness import ViewApp, screen_text

pytestmark = pytest.mark.anyio


async def test_draws_the_norms_lists_the_massive_values_and_the_sinks(source):
    app = ViewApp(ActivationsView(data_source=source))
    async with app.activated(size=(140, 40)) as pilot:
        data = source.data["activations"][DEFAULT_PROMPT]
        heatmap = app.view.query_one("#activations-norms", Heatmap)
        assert np.array_equal(heatmap.matrix, data["residual_norm"]) and app.focused is heatmap
        text = screen_text(app)
        top = data["massive"][0]
        assert f"{top['value']:8.1f}".strip() in text and "sink heads" in text
        shares = np.asarray(data["sink_share"])
        sinks = app.view.sink_heads()
        assert [(layer, head) for layer, head, _ in sinks] == [tuple(i) for i in np.argwhere(shares > 0.5)]
        for layer, head, share in sinks:
            assert f"L{layer} H{head} {share:.2f}" in text
        await pilot.press("down", "right")
        await pilot.pause()
        info = str(app.view.query_one("#activations-info").render())
        assert info == f"after layer 0, position 1 {data['tokens'][1]!r}: norm {data['residual_norm'][1][1]:.2f}"
        assert app.view.export_data() is data
