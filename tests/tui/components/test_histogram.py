"""Histogram from precomputed bins: exact rebinning, integer tick positions, log and clip toggles."""

from __future__ import annotations

import numpy as np
import pytest

from tui.components.histogram import Histogram
from tui.components.plotting import PlotCanvas

pytestmark = pytest.mark.anyio


def bins(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    values = np.random.default_rng(0).standard_t(4, size=100_000) * 0.02
    counts, edges = np.histogram(values, bins=n)
    return edges, counts


async def test_draws_merged_bins_that_sum_exactly(host) -> None:  # noqa: ANN001
    edges, counts = bins(200)
    hist = Histogram(edges, counts, title="down_proj.weight")
    app = host(hist)
    async with app.run_host(size=(80, 24)) as pilot:
        await pilot.pause()
        canvas = app.query_one(PlotCanvas)
        spec = canvas.last_spec
        assert spec is not None
        assert hist.shown_counts.size < 200 and hist.shown_counts.size <= 80
        assert int(hist.shown_counts.sum()) == int(counts.sum())
        assert set(hist.shown_edges.tolist()) <= set(edges.tolist())
        assert list(spec.bars) == hist.shown_counts.astype(float).tolist()
        # tick positions are bar indices (integers), labels are formatted values, never raw floats
        assert all(float(p).is_integer() for p, _ in spec.xticks)
        assert all(len(label) <= 7 for _, label in spec.xticks)
        header = str(app.query_one(".histogram--header").render())
        assert "down_proj.weight" in header and "n=100k" in header


async def test_log_toggle_uses_log10_count_plus_one(host) -> None:  # noqa: ANN001
    edges, counts = bins(40)
    hist = Histogram(edges, counts)
    app = host(hist)
    async with app.keys(hist, "l") as pilot:
        spec = app.query_one(PlotCanvas).last_spec
        assert spec is not None
        assert np.allclose(spec.bars, np.log10(counts + 1.0))
        assert [label for _, label in spec.yticks][:3] == ["0", "10", "100"]
        assert [m.log for m in app.of_type(Histogram.LogToggled)] == [True]
        await pilot.press("l")
        await pilot.pause()
        assert list(app.query_one(PlotCanvas).last_spec.bars) == counts.astype(float).tolist()


async def test_clip_toggle_asks_the_parent_and_shows_the_subtitle(host) -> None:  # noqa: ANN001
    edges, counts = bins(100)
    hist = Histogram(edges, counts)
    app = host(hist)
    async with app.keys(hist, "c") as pilot:
        assert [m.clip for m in app.of_type(Histogram.ClipToggled)] == [True]
        # the parent answers with bins over [p1, p99]
        inner_edges = np.linspace(-0.05, 0.05, 51)
        inner_counts = np.full(50, 10)
        hist.set_bins(inner_edges, inner_counts, subtitle="clipped to [p1, p99]: 2,000 outside")
        await pilot.pause()
        header = str(app.query_one(".histogram--header").render())
        assert "clipped to [p1, p99]" in header and "clip p1–p99 on" in header
        assert int(hist.shown_counts.sum()) == 500


async def test_empty_and_tiny(host) -> None:  # noqa: ANN001
    hist = Histogram(np.array([0.0]), np.array([], dtype=int))
    app = host(hist)
    async with app.run_host(size=(20, 8)) as pilot:
        await pilot.pause()
        hist.set_bins([0.0, 1.0], [5])
        await pilot.pause()
        assert int(hist.shown_counts.sum()) == 5
        with pytest.raises(ValueError):
            hist.set_bins([0.0, 1.0], [1, 2])
