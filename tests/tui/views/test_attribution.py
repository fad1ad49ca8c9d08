"""The attribution view alone: signed bars for the embedding, each attention block and MLP, the selected
layer's heads, and the identity sum + bias = logit."""

from __future__ import annotations

import pytest

from tui.views.attribution import DEFAULT_PROMPT, AttributionView, signed_bars
from views.harness import ViewApp, screen_text

pytestmark = pytest.mark.anyio


def test_signed_bars_put_negatives_left_and_positives_right():
    lines = signed_bars([("a", -1.0), ("b", 0.5)], scale=1.0).plain.splitlines()
    left, right = lines[0].split("│")
    assert left.endswith("█" * 24) and right.strip() == ""
    left, right = lines[1].split("│")
    assert left.strip().endswith("+0.500") and right.rstrip() == "█" * 12


async def test_draws_the_parts_the_heads_and_the_identity(source):
    app = ViewApp(AttributionView(data_source=source))
    async with app.activated(size=(150, 40)) as pilot:
        data = source.data["attribute"][DEFAULT_PROMPT]
        assert app.view.data is data
        text = screen_text(app)
        total = data["embedding"] + sum(data["attention"]) + sum(data["mlp"])
        assert f"= {total + data['bias']:+.4f}   (logit {data['logit']:+.4f})" in text
        assert abs(total + data["bias"] - data["logit"]) < 1e-3
        for layer, value in enumerate(data["mlp"]):
            assert f"L{layer} MLP" in text and f"{value:+8.3f}" in text
        assert f"L0 h0 {data['heads'][0][0]:+8.3f}" in text
        await pilot.press("full_stop")
        assert app.view.layer_idx == 1 and f"L1 h0 {data['heads'][1][0]:+8.3f}" in screen_text(app)
