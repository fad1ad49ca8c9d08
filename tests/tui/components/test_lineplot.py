"""Cross-layer line plot: marker keys, messages, integer x ticks, downsampling."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.lineplot import LinePlot
from tui.components.plotting import PlotCanvas

pytestmark = pytest.mark.anyio

COMPONENTS = ("q", "k", "v", "o", "gate", "up", "down")


def series(layers: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: 0.02 + rng.normal(size=layers) * 0.002 for name in COMPONENTS}


async def test_keys_move_the_marker_and_post_points(host) -> None:  # noqa: ANN001
    data = series()
    plot = LinePlot(data, title="std across layers")
    app = host(plot)
    async with app.keys(plot, "right", "right", "l", "down", "left", "enter", size=(80, 24)) as pilot:
        points = app.of_type(LinePlot.PointSelected)
        assert [(p.series, p.index) for p in points] == [("q", 1), ("q", 2), ("q", 3), ("k", 3), ("k", 2)]
        assert points[-1].value == pytest.approx(data["k"][2])
        assert points[-1].x == 2
        opened = app.of_type(LinePlot.PointOpened)
        assert [(p.series, p.index) for p in opened] == [("k", 2)]
        spec = app.query_one(PlotCanvas).last_spec
        assert spec is not None and spec.vline == 2
        assert spec.points[0].y == pytest.approx(data["k"][2])
        assert all(float(p).is_integer() and label == str(int(p)) for p, label in spec.xticks)
        assert "k · layer 2:" in str(app.query_one(".lineplot--header").render())
        await pilot.press("home", "end")
        await pilot.pause()
        assert plot.selected == ("k", 27)


async def test_long_series_are_downsampled_to_about_twice_the_width(host) -> None:  # noqa: ANN001
    y = np.sin(np.arange(5000) / 50.0)
    y[2500] = 10.0
    plot = LinePlot({"x": y})
    app = host(plot)
    async with app.run_host(size=(80, 24)) as pilot:
        await pilot.pause()
        spec = app.query_one(PlotCanvas).last_spec
        assert spec is not None
        drawn = spec.lines[0]
        assert len(drawn.x) <= 2 * 80
        assert 10.0 in drawn.y  # the spike survives


async def test_nan_points_and_empty(host) -> None:  # noqa: ANN001
    data = {"a": np.array([1.0, np.nan, 3.0]), "b": np.array([np.nan, np.nan, np.nan])}
    plot = LinePlot(data)
    empty = LinePlot()
    app = host(plot, empty)
    async with app.keys(plot, "down", "right", size=(80, 24)):
        last = app.of_type(LinePlot.PointSelected)[-1]
        assert last.series == "b" and np.isnan(last.value)
        assert app.query(PlotCanvas).first().last_spec.lines[1].x == ()
        with pytest.raises(ValueError):
            plot.set_series({"a": [1.0], "b": [1.0, 2.0]})
