"""The tensor view alone: statistics, histogram and weight heatmap from the data source; `c` re-asks clipped."""

from __future__ import annotations

import pytest

from tui.components.heatmap import Heatmap
from tui.data_source import DataSource
from tui.messages import Progress, WorkerFailed
from tui.views.tensor import TensorView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio
NAME = "model.layers.1.self_attn.q_proj.weight"


def node(source, name=NAME):
    return next(n for n in source.data["tree"] if n["name"] == name)


def test_the_fake_is_a_data_source(source) -> None:
    assert isinstance(source, DataSource)


async def test_draws_statistics_and_the_weight_matrix(source):
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.show(node(source))
        await settle(app, pilot)
        stats = source.data["tensor_stats"][NAME]
        assert app.view.data is stats and app.view.preview is source.data["matrix_preview"][NAME]
        shot = screen_text(app)
        assert NAME in shot and "kurtosis" in shot and f"{stats['numel']:,}" in shot
        heatmap = app.view.query_one(Heatmap)
        assert heatmap.display and heatmap.matrix.shape == source.data["matrix_preview"][NAME]["values"].shape
        assert [c[0] for c in source.calls] == ["tensor_stats", "matrix_preview"]
        assert not app.posted  # nothing for the app: no progress, no failure


async def test_clip_key_asks_for_clipped_statistics(source):
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.show(node(source))
        await settle(app, pilot)
        app.view.query_one("#tensor-hist").focus()
        await pilot.press("c")
        await settle(app, pilot)
        assert source.calls[-1] == ("tensor_stats", (NAME,), {"bins": 64, "clip": True})


async def test_a_vector_has_no_heatmap(source):
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        bias = node(source, "model.layers.1.self_attn.q_proj.bias")
        app.view.show(bias)
        await settle(app, pilot)
        assert not app.view.query_one(Heatmap).display
        # not recorded: the fake raises like a worker refusing the request, and the view says so
        assert app.view.message_widget().has_class("error")
        assert [c[0] for c in source.calls] == ["tensor_stats"]


async def test_a_crashed_worker_is_drawn_and_reported_to_the_app(source):
    source.crash = True
    app = ViewApp(TensorView(data_source=source))
    async with app.run_test(size=(120, 40)) as pilot:
        app.view.show(node(source))
        await settle(app, pilot)
        assert "press r to restart" in str(app.view.message_widget().render())
        failed = app.of(WorkerFailed)
        assert failed and "crashed" in str(failed[0].error)
        assert not app.of(Progress)
