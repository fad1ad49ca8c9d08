"""The patching view alone: progress while it runs, Escape cancels (here and in the worker), three grids
switched with g, a new request after a cancel draws its result."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from textual.widgets import Input, ProgressBar

from tui.components.heatmap import Heatmap
from tui.messages import Progress
from tui.views.patching import DEFAULT_CLEAN, DEFAULT_CORRUPT, PatchingView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio


async def test_runs_shows_progress_switches_grids_and_cancels(source):
    app = ViewApp(PatchingView(data_source=source))
    view = app.view
    async with app.run_test(size=(140, 40)) as pilot:
        source.gate = threading.Event()  # hold the request: it is running
        view.activate()
        await pilot.pause(0.1)
        assert view.running and view.query_one(ProgressBar).display
        view.focus_target().focus()
        await pilot.press("escape")
        await pilot.pause()
        assert not view.running and "cancelled" in screen_text(app)
        source.gate.set()
        await settle(app, pilot)
        assert ("cancel", ("patch",), {}) in source.calls and view.data is None  # the held result was dropped

        source.gate = None
        view.query_one("#patching-clean", Input).focus()
        await pilot.press("enter")  # a new request
        await settle(app, pilot)
        data = source.data["patch"][f"{DEFAULT_CLEAN}|{DEFAULT_CORRUPT}"]
        assert view.data is data and not view.running and app.of(Progress)
        assert source.calls[-1] == ("patch", (DEFAULT_CLEAN, DEFAULT_CORRUPT), {"target": None})
        grid = view.query_one("#patching-grid", Heatmap)
        assert np.array_equal(grid.matrix, data["residual"]) and app.focused is grid
        assert f"target {data['target']!r}" in screen_text(app)
        await pilot.press("g")
        assert view.grid == "attention" and np.array_equal(grid.matrix, data["attention"])
        await pilot.press("g", "g")
        heads = view.query_one("#patching-heads", Heatmap)
        assert view.grid == "heads" and heads.display and not grid.display
        assert np.array_equal(heads.matrix, data["heads"]) and app.focused is heads
        await pilot.press("right")
        await pilot.pause()
        assert str(view.query_one("#patching-cell").render()).startswith("heads, layer 0, head 1: restores")
        assert view.export_data()["result"] is data and view.export_data()["grid"] == "heads"


async def test_use_prompt_waits_for_the_corrupted_prompt(source):
    app = ViewApp(PatchingView(data_source=source))
    async with app.run_test(size=(140, 40)) as pilot:
        app.view.use_prompt("def h(y): return y")
        app.view.activate()
        await settle(app, pilot)
        assert not source.calls and app.view.query_one("#patching-corrupt", Input).value == "def h(y): return y"
        assert app.view.focus_target() is app.view.query_one("#patching-corrupt", Input)
