"""Layers × components heat strip: one labelled line per component, cursor, tensor picking."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.heat_strip import DEFAULT_COMPONENTS, HeatStrip
from tui.components.heatmap import Heatmap
from tui.components.theme import SEQUENTIAL

pytestmark = pytest.mark.anyio


def values(layers: int = 28) -> np.ndarray:
    rng = np.random.default_rng(0)
    return 0.02 + rng.uniform(size=(len(DEFAULT_COMPONENTS), layers)) * 0.01


async def test_one_line_per_component_with_labels(host, cells, lines) -> None:  # noqa: ANN001
    v = values()
    strip = HeatStrip(v, metric="std")
    app = host(strip)
    async with app.run_host() as pilot:
        await pilot.pause()
        text = lines(strip)
        assert text[0].startswith("std")
        geo = strip._get_geometry()
        assert geo is not None and geo.sy == 2 and geo.sx == 4 and geo.col_factor == 1
        assert strip.size.height == 2 + len(DEFAULT_COMPONENTS)  # height: auto
        lo, hi = strip.limits
        levels = SEQUENTIAL.quantise(v, lo, hi)
        for r, name in enumerate(DEFAULT_COMPONENTS):
            line = text[geo.grid_y + r]
            assert line[: geo.gutter - 1].strip() == name
            row = cells(strip.render_line(geo.grid_y + r))
            ch, style = row[geo.gutter + 4 * 5 + 1]  # layer 5
            if (r, 5) != strip.cursor:
                assert style.color.get_truecolor() == style.bgcolor.get_truecolor()
                assert style.color.get_truecolor() == SEQUENTIAL.color(int(levels[r, 5])).get_truecolor()


async def test_keys_pick_a_tensor(host) -> None:  # noqa: ANN001
    v = values()
    strip = HeatStrip(v, metric="rms")
    app = host(strip)
    async with app.keys(strip, "down", "right", "right", "enter", size=(80, 24)):
        picked = app.of_type(HeatStrip.TensorPicked)
        assert [(p.component, p.layer) for p in picked] == [("k", 2)]
        assert picked[0].value == pytest.approx(v[1, 2])
        assert app.of_type(Heatmap.CursorMoved)[-1].col == 2
        assert "k · layer 2:" in strip.render_line(0).text


async def test_more_layers_than_columns_are_merged(host) -> None:  # noqa: ANN001
    v = values(200)
    strip = HeatStrip(v, layers=list(range(200)))
    app = host(strip)
    async with app.keys(strip, "right", "enter", size=(80, 24)):
        geo = strip._get_geometry()
        assert geo is not None and geo.col_factor == 3 and geo.sx == 1
        picked = app.of_type(HeatStrip.TensorPicked)[-1]
        assert picked.layer == 3  # second block starts at layer 3
        assert picked.value == pytest.approx(v[0, 3:6].mean())
        assert "layers 3-5" in strip.render_line(0).text
