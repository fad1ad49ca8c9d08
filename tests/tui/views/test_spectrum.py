"""The spectra in the views, with the fake data source (the demo model's recorded answers): the tensor view's
spectrum tab, the cross-layer view's α / stable rank / spikes, and the tree's badges with their help line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tui.components.esd_plot import EsdPlot, esd_density
from tui.messages import Progress, SpectraComputed
from tui.model_tree import ModelTree
from tui.views.cross_layer import CrossLayerView
from tui.views.tensor import TensorView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio
NAME = "model.layers.1.self_attn.q_proj.weight"


def node(source, name=NAME):
    return next(n for n in source.data["tree"] if n["name"] == name)


async def test_spectrum_tab_draws_the_esd_the_numbers_and_the_reading(source):
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(130, 42)) as pilot:
        app.view.show(node(source))
        await settle(app, pilot)
        assert "spectrum" not in [c[0] for c in source.calls]  # asked for only when the tab is shown
        app.view.query_one("#tensor-hist").focus()
        await pilot.press("s")  # the tab's key
        await settle(app, pilot)
        spectrum = source.data["spectrum"][NAME]
        assert app.view.tab == "spectrum" and app.view.spectrum is spectrum
        assert source.calls[-1][0] == "spectrum" and source.calls[-1][1] == (NAME,)
        shot = screen_text(app)
        fit = spectrum["powerlaw"]
        for label in ("σ_max", "‖W‖_F", "stable rank", "effective rank", "α", "x_min", "KS D", "spikes / m"):
            assert label in shot, label
        assert f"{fit['alpha']:.4g}" in shot and f"{spectrum['num_spikes']} / {spectrum['m']}" in shot
        assert "reading α:" in shot and "over-trained" in shot  # the alpha_reading line (α < 2 here)
        assert "Marchenko–Pastur edge" in shot
        plot = app.view.query_one(EsdPlot).query_one("PlotCanvas")
        spec = plot.last_spec
        assert spec is not None and spec.vline == pytest.approx(math.log10(spectrum["mp_bulk_edge"]))
        esd, tail = spec.lines
        xs, ys = esd_density(spectrum["esd_histogram"]["log10_edges"], spectrum["esd_histogram"]["counts"])
        assert esd.x == tuple(xs) and tail.x[0] == pytest.approx(math.log10(fit["xmin"]))
        slope = (tail.y[-1] - tail.y[0]) / (tail.x[-1] - tail.x[0])
        assert slope == pytest.approx(-fit["alpha"])  # a power law is a line of slope −α on log-log axes
        # the density integrates to 1 over λ (bins of log10 λ: dλ = ln10·λ·d log10 λ)
        edges = np.asarray(spectrum["esd_histogram"]["log10_edges"])
        widths = dict(zip((edges[:-1] + edges[1:]) / 2, np.diff(edges)))
        total = sum(10 ** y * math.log(10) * 10 ** x * widths[x] for x, y in zip(xs, ys))
        assert total == pytest.approx(1.0)
        assert app.view.export_data()["spectrum"] is spectrum and app.view.export_data()["tab"] == "spectrum"
        await pilot.press("s")
        assert app.view.tab == "statistics"
        progress = app.of(Progress)  # drawn in the view (a computation), not as the model loading in the status bar
        assert progress and not any(p.status for p in progress)


async def test_a_vector_has_no_spectrum(source):
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(130, 42)) as pilot:
        app.view.show(node(source, "model.layers.1.self_attn.q_proj.bias"))
        app.view.show_tab("spectrum")
        await settle(app, pilot)
        assert "spectrum" not in [c[0] for c in source.calls]
        assert "not one stored weight matrix" in screen_text(app)


async def test_cross_layer_alpha_asks_for_the_spectra_once_and_posts_them(source):
    app = ViewApp(CrossLayerView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.activate()
        await settle(app, pilot)
        app.view.show_metric("alpha")
        await settle(app, pilot)
        spectra = source.data["spectra"]
        assert app.view.spectra is spectra and app.view.metric == "alpha"
        assert "α (power-law tail) of each weight" in screen_text(app)
        (posted,) = [m for m in app.posted if isinstance(m, SpectraComputed)]
        assert posted.spectra is spectra
        from tui.components.heat_strip import HeatStrip

        strip = app.view.query_one(HeatStrip)
        expected = np.array([[np.nan if v is None else v for v in spectra["metrics"]["alpha"][c]]
                             for c in spectra["components"]])
        np.testing.assert_allclose(np.asarray(strip.matrix, dtype=float), expected)
        await pilot.press("m")  # stable rank: no new request
        await pilot.press("m")
        assert app.view.metric == "spikes" and "spikes beyond the MP edge" in screen_text(app)
        assert [c[0] for c in source.calls].count("spectra") == 1
        await pilot.press("m")
        assert app.view.metric == "std"
        await pilot.press("enter")  # still opens the tensor of the selected point
        await settle(app, pilot)
        assert app.view.export_data()["spectra"] is spectra


async def test_tree_badges_flag_alpha_outside_2_6_or_a_poor_fit(source):
    tree = ModelTree(id="tree")
    app = ViewApp(tree)
    async with app.run_test(size=(100, 40)) as pilot:
        tree.populate(source.data["tree"], source.data["summary"])
        await pilot.pause()
        briefs = source.data["spectra"]["matrices"]
        tree.set_spectra(briefs)
        await pilot.pause()
        flagged = {b["stored_name"]: b for b in briefs
                   if b["alpha"] is not None and (not 2 <= b["alpha"] <= 6 or b["ks_distance"] > 0.1)}
        assert flagged and set(tree.badges) == set(flagged)  # the demo model stores every matrix under its name
        for name, b in flagged.items():
            label = str(tree._by_name[name].label)
            assert f"α{b['alpha']:.1f}" in label
            assert tree.reading_of(name) == f"{name}: {b['alpha_reading']}"
        healthy = next(b["name"] for b in briefs if b["name"] not in flagged)
        assert "α" not in str(tree._by_name[healthy].label) and tree.reading_of(healthy) is None
        tree.populate(source.data["tree"], source.data["summary"])  # the exact tree replaces the provisional one
        assert set(tree.badges) == set(flagged)


async def test_escape_stops_the_whole_model_spectra(source):
    import threading

    app = ViewApp(CrossLayerView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.activate()
        await settle(app, pilot)
        source.gate = threading.Event()  # the spectra request is held until set
        app.view.show_metric("alpha")
        await pilot.pause()
        assert "computing the spectra" in str(app.view.message_widget().render())
        await pilot.press("escape")
        assert app.view.metric == "std" and "spectra stopped" in str(app.view.message_widget().render())
        source.gate.set()
        await settle(app, pilot)
        assert app.view.spectra is None and not app.of(SpectraComputed)  # the late answer is dropped
        source.gate = None
        app.view.show_metric("alpha")  # asked again: computed (or read from the cache) this time
        await settle(app, pilot)
        assert app.view.spectra is source.data["spectra"] and app.of(SpectraComputed)
