"""The model card alone (it is given the summary; it asks nothing)."""

from __future__ import annotations

import pytest

from tui.views.summary import SummaryView
from views.harness import ViewApp, screen_text

pytestmark = pytest.mark.anyio


async def test_draws_the_card_and_the_tying_check(source):
    summary = source.data["summary"]
    app = ViewApp(SummaryView())
    async with app.run_test(size=(120, 50)) as pilot:
        app.view.show(summary)
        await pilot.pause()
        shot = screen_text(app)
        assert "Architecture" in shot and summary["architecture"] in shot
        assert "tied-embeddings check" in shot and "Parameters by component" in shot
        assert app.view.export_data() is summary and not app.posted
