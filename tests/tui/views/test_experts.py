"""The experts view alone (routing heatmap, load bars, router panel; `,` `.` move layers), and the tensor view
on mixture-of-experts parameters: a fused expert parameter (with each expert's spectrum, and its spectrum tab
stepping through the experts with `,` `.`), one stored expert tensor, a router weight."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from textual.widgets import Static

from tui.components.bars import Bars
from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples
from tui.components.histogram import Histogram
from tui.views.experts import ExpertsView, routing_matrix
from tui.views.router_panel import RouterPanel
from tui.views.tensor import TensorView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio
PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"
FUSED = "model.layers.0.mlp.experts.gate_up_proj"


def node(source, name):
    return next(n for n in source.data["tree"] if n["name"] == name)


def routers(source) -> list[str]:
    return [n["name"] for n in source.data["tree"] if n["kind"] == "parameter" and n.get("component") == "router"]


async def test_routing_heatmap_load_bars_and_router_move_with_the_layer_keys(moe_source):
    view = ExpertsView(data_source=moe_source)
    view.set_model(moe_source.data["summary"], moe_source.data["tree"])
    app = ViewApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        view.activate()
        await settle(app, pilot)
        routing = moe_source.data["experts"][PROMPT]
        assert view.data is routing and view.current_layer()["layer"] == 0
        heatmap = view.query_one("#experts-routing", Heatmap)
        expected = routing_matrix(routing["layers"][0], 4)
        np.testing.assert_array_equal(heatmap.matrix, expected)
        # each token's row holds exactly its top-2 weights, which Mixtral renormalises to 1
        assert ((expected > 0).sum(axis=1) == 2).all() and np.allclose(expected.sum(axis=1), 1)
        assert view.query_one("#experts-load", Bars).values == routing["layers"][0]["load"]
        panel = view.query_one("#experts-router", RouterPanel)
        assert panel.summary == moe_source.data["router_summary"][routers(moe_source)[0]]
        shot = screen_text(app)
        assert "layer 0 load: tokens per expert" in shot and "router cosine" in shot and "router row L2 norm" in shot
        heatmap.focus()
        await pilot.press("full_stop")
        await settle(app, pilot)
        assert view.current_layer()["layer"] == 1 and panel.summary["layer"] == 1
        np.testing.assert_array_equal(heatmap.matrix, routing_matrix(routing["layers"][1], 4))
        await pilot.press("comma", "comma")
        await settle(app, pilot)
        assert view.current_layer()["layer"] == 2  # wraps around
        assert [c[0] for c in moe_source.calls].count("experts") == 1  # moving layers asks nothing new
        exported = view.export_data()
        assert exported["layer"] == 2 and exported["router"]["layer"] == 2 and exported["routing"] is routing


async def test_a_dense_model_is_refused_in_the_view(moe_source):
    view = ExpertsView(data_source=moe_source)
    app = ViewApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        view.focus_on(prompt="a prompt nobody recorded")
        await settle(app, pilot)
        assert view.message_widget().has_class("error") and view.data is None


async def test_a_fused_expert_parameter_opens_with_histogram_and_per_expert_plots(moe_source):
    app = ViewApp(TensorView(data_source=moe_source))
    async with app.run_test(size=(120, 50)) as pilot:
        app.view.show(node(moe_source, FUSED))
        await settle(app, pilot)
        stats = moe_source.data["expert_stats"][FUSED]
        assert app.view.data is stats
        hist = app.view.query_one(Histogram)
        assert int(hist.shown_counts.sum()) == stats["numel"] - stats["nan"] - stats["inf"]
        plots = app.view.query_one("#tensor-expert-plots", SmallMultiples)
        assert plots.display and not app.view.query_one("#tensor-heatmap").display
        shot = screen_text(app)
        assert "per expert" in shot and "kurtosis" in shot and "16 stored tensors" not in shot
        assert f"{len(stats['stored'])} stored tensors" in shot
        # each expert's spectrum is asked for after the statistics are drawn, and joins the table and plots
        assert [c[0] for c in moe_source.calls] == ["expert_stats", "expert_spectra"]
        assert moe_source.calls[-1][1] == (FUSED,)
        spectra = moe_source.data["expert_spectra"][FUSED]
        assert app.view.expert_spectra is spectra
        for column in ("α", "D", "st.rank", "spikes"):
            assert column in shot, column
        for brief in spectra["experts"]:
            for value in (f"{brief['alpha']:.4g}", f"{brief['ks_distance']:.4g}", f"{brief['stable_rank']:.4g}"):
                assert value in shot, value
        alphas = [b["alpha"] for b in spectra["experts"]]
        assert plots._titles[-1] == f"α {min(alphas):.3g}–{max(alphas):.3g}" and plots.count == 4
        assert app.view.export_data()["expert_spectra"] is spectra
        assert not app.view.message_widget().display


async def test_the_spectrum_tab_steps_through_the_experts_and_says_which(moe_source):
    app = ViewApp(TensorView(data_source=moe_source))
    async with app.run_test(size=(130, 45)) as pilot:
        view = app.view
        view.show(node(moe_source, FUSED))
        await settle(app, pilot)
        view.query_one("#tensor-hist").focus()
        assert "full_stop" not in app.active_bindings  # the statistics tab: `,` `.` are not offered
        await pilot.press("full_stop")
        assert view.expert == 0 and "spectrum" not in [c[0] for c in moe_source.calls]
        await pilot.press("s")
        await settle(app, pilot)
        assert view.tab == "spectrum"
        shown = {key: b.binding.description for key, b in app.active_bindings.items() if b.enabled}
        assert shown.get("comma") == "Expert -" and shown.get("full_stop") == "Expert +"  # in the footer
        for key, expected in ((None, 0), ("full_stop", 1), ("full_stop", 2), ("comma", 1), ("comma", 0),
                              ("comma", 3)):  # wraps around
            if key is not None:
                await pilot.press(key)
                await settle(app, pilot)
            want = moe_source.data["spectrum"][f"{FUSED}[{expected}]"]
            assert view.expert == expected and view.spectrum is want
            assert moe_source.calls[-1][:2] == ("spectrum", (f"{FUSED}[{expected}]",))
            shot = screen_text(app)
            assert f"expert {expected} of 4 (experts 0–3)" in shot
            assert f"{want['powerlaw']['alpha']:.4g}" in shot and f"{want['num_spikes']} / {want['m']}" in shot
        assert view.export_data()["expert"] == 3
        view.show_tab("statistics")
        await pilot.pause()
        assert "full_stop" not in app.active_bindings


async def test_the_slice_line_names_the_users_remapped_expert_keys(moe_source):
    app = ViewApp(TensorView(data_source=moe_source))
    app.set_keymap({"tensor.expert_prev": "left_square_bracket", "tensor.expert_next": "right_square_bracket"})
    async with app.run_test(size=(130, 45)) as pilot:
        view = app.view
        view.show(node(moe_source, FUSED))
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
        await pilot.press("right_square_bracket")
        await settle(app, pilot)
        assert view.expert == 1
        line = str(view.query_one("#spectrum-slice", Static).render())
        assert "[ ] previous / next expert" in line, line  # the keys the user chose, not `,` `.`


async def test_escape_stops_the_experts_spectra_and_drops_the_late_answer(moe_source):
    release = threading.Event()
    answer = moe_source.expert_spectra

    def held(name, on_progress=None):
        if on_progress is not None:
            on_progress(0.25, f"{name}[1]")
        release.wait(10)
        return answer(name)

    moe_source.expert_spectra = held  # type: ignore[method-assign]
    app = ViewApp(TensorView(data_source=moe_source))
    async with app.run_test(size=(130, 45)) as pilot:
        app.view.show(node(moe_source, FUSED))
        for _ in range(10):
            await pilot.pause()
        assert "each expert's spectrum (Esc stops)" in app.view.message_widget().render().plain
        assert "…" in screen_text(app)  # the spectral columns wait, the statistics are drawn
        assert app.view.data is moe_source.data["expert_stats"][FUSED]
        app.view.query_one("#tensor-hist").focus()
        await pilot.press("escape")
        release.set()
        await settle(app, pilot)
        assert ("cancel", ("expert_spectra",), {}) in moe_source.calls
        assert app.view.expert_spectra is None and "stopped" in screen_text(app)


async def test_one_stored_expert_tensor_and_a_router_open(moe_source):
    stored = "model.layers.0.block_sparse_moe.experts.3.w1.weight"
    stored_node = {"name": stored, "parent": "x", "kind": "parameter", "shape": [256, 144], "dtype": "float32",
                   "stored": [stored], "converted": False, "tied_to": None, "component": "experts", "layer": 0}
    app = ViewApp(TensorView(data_source=moe_source))
    async with app.run_test(size=(120, 50)) as pilot:
        app.view.show(stored_node)
        await settle(app, pilot)
        assert app.view.data is moe_source.data["tensor_stats"][stored]
        assert app.view.query_one("#tensor-heatmap").display
        assert not app.view.query_one("#tensor-experts").display and not app.view.query_one("#tensor-router").display
        app.view.show_tab("spectrum")  # one matrix: its spectrum, no expert to step through, no per-expert spectra
        await settle(app, pilot)
        assert app.view.spectrum is moe_source.data["spectrum"][stored]
        assert "full_stop" not in app.active_bindings and "expert 0 of" not in screen_text(app)
        assert "expert_spectra" not in [c[0] for c in moe_source.calls]
        app.view.show_tab("statistics")
        router = routers(moe_source)[0]
        app.view.show(node(moe_source, router))
        await settle(app, pilot)
        panel = app.view.query_one("#tensor-router", RouterPanel)
        assert panel.display and panel.summary is moe_source.data["router_summary"][router]
        cosine = panel.query_one(Heatmap).matrix
        np.testing.assert_allclose(np.diag(cosine), 1.0)
        assert app.view.export_data()["router"] is panel.summary
