"""The lessons pane alone: a lesson with the model's numbers, links posted as FollowLink, a demo run from the
data source, Esc posted as CloseLessons."""

from __future__ import annotations

import pytest
from textual.widgets import Markdown

from tui.messages import CloseLessons, FollowLink
from tui.views.lessons import LessonsPane
from views.harness import ViewApp, settle

pytestmark = pytest.mark.anyio


async def test_links_demo_and_close_are_messages(source):
    pane = LessonsPane(data_source=source)
    pane.set_model(source.data["summary"], source.data["tree"])
    app = ViewApp(pane)
    async with app.run_test(size=(140, 40)) as pilot:
        pane.open("peft")
        await pilot.pause()
        assert pane.current == "peft"
        pane.query_one(Markdown).post_message(Markdown.LinkClicked(pane.query_one(Markdown), "llm:view/attention"))
        await pilot.pause()
        assert [m.target for m in app.of(FollowLink)] == ["llm:view/attention"]
        pane.focus_list()
        await pilot.press("d")
        await settle(app, pilot)
        assert source.calls[-1][0] == "run_demo" and len(pane.points["loss"]) == 4
        status = str(pane.query_one("#demo-status").render())
        assert "demo finished" in status and "counts.trainable: 1234" in status
        await pilot.press("escape")
        await pilot.pause()
        assert app.of(CloseLessons)
