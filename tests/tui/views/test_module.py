"""A module's children alone."""

from __future__ import annotations

import pytest

from tui.views.module import ModuleView
from views.harness import ViewApp, screen_text

pytestmark = pytest.mark.anyio


async def test_lists_children_with_their_share(source):
    tree = source.data["tree"]
    node = next(n for n in tree if n["name"] == "model.layers.0.self_attn")
    children = [n for n in tree if n["parent"] == node["name"]]
    app = ViewApp(ModuleView())
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.show(node, children, source.data["summary"])
        await pilot.pause()
        shot = screen_text(app)
        assert "q_proj" in shot and "o_proj" in shot and "% of the model" in shot
        assert app.view.export_data()["children"] == children
