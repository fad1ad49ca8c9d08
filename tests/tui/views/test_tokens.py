"""The tokens view alone: the prompt's pieces and ids; Enter on a token asks for its neighbours."""

from __future__ import annotations

import pytest

from tui.components.tokens import TokenStrip
from tui.views.tokens import DEFAULT_TEXT, TokensView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio


async def test_draws_tokens_and_their_neighbours(source):
    app = ViewApp(TokensView(data_source=source))
    async with app.activated() as pilot:
        data = source.data["tokenize"][DEFAULT_TEXT]
        strip = app.view.query_one(TokenStrip)
        assert strip.count == len(data["ids"]) and app.focused is strip
        assert str(data["ids"][0]) in screen_text(app)
        await pilot.press("right", "enter")
        await settle(app, pilot)
        token_id = data["ids"][1]
        assert source.calls[-1] == ("neighbours", (token_id,), {"k": 12})
        neighbours = source.data["neighbours"][str(token_id)]
        assert app.view.neighbours is neighbours
        assert f"(id {token_id})" in screen_text(app)
