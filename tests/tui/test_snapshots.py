"""Snapshots of the main screens (the tensor view is left out: plotext places its x tick labels a column
apart from run to run, so its SVG is not stable; tests/tui/test_app.py checks that view's data instead): the exported SVG compared with tests/tui/snapshots/*.svg.

Textual names the SVG's CSS classes after a hash that changes from process to process (Rich gives styles
with click actions random link ids), so both sides are normalised before comparing. After an intended
change: `LLM_INTERNALS_UPDATE_SNAPSHOTS=1 ./scripts/test tests/tui/test_snapshots.py`, then look at the
new SVGs (e.g. `rsvg-convert` to PNG) before committing them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from tui.app import ExplorerApp

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class StableClient(InProcessClient):
    """Memory figures and temporary paths change from run to run; a snapshot must not."""

    def status(self):
        loaded = bool(super().status().get("loaded"))
        return {"model": "tiny", "pid": 1, "loaded": loaded, "device": "cpu", "dtype": "float32", "rss_bytes": 2**30}

    def summary(self):
        return {**super().summary(), "path": "tiny-llama"}


def normalise(svg: str) -> str:
    return re.sub(r"terminal-\d+", "terminal", svg)


async def snapshot(folder, name: str, action=None) -> None:
    app = ExplorerApp(StableClient(ModelService(open_model(str(folder)))), model_label="tiny llama")
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = "textual-dark"
        app.status_timer.stop()  # the status bar is drawn from one poll at the end, not from a race with one
        for _ in range(2):
            await pilot.pause()
            await app.workers.wait_for_complete()
        if action:
            await action(app, pilot)
            for _ in range(2):
                await pilot.pause()
                await app.workers.wait_for_complete()
        app.poll_status()
        await app.workers.wait_for_complete()
        await pilot.pause()
        svg = normalise(app.export_screenshot())
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("LLM_INTERNALS_UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg)
        if not os.environ.get("LLM_INTERNALS_UPDATE_SNAPSHOTS"):
            pytest.fail(f"new snapshot written to {path}: look at it, then commit it")
    if svg != path.read_text():
        actual = Path(os.environ.get("TMPDIR", "/tmp")) / f"llm-internals-snapshot-{name}.svg"
        actual.write_text(svg)
        pytest.fail(f"{name} changed: compare {actual} with {path} (update with LLM_INTERNALS_UPDATE_SNAPSHOTS=1)")


async def test_model_card(tiny_models):
    await snapshot(tiny_models("llama"), "model_card")


async def test_attention_view_of_the_demo_model():
    """Layer 1 of the shipped demo model: its induction heads, grouped by the KV head they share."""
    from internals.demo_path import demo_model_path

    async def attention(app, pilot):
        await pilot.press("3")
        for _ in range(2):
            await pilot.pause()
            await app.workers.wait_for_complete()
        await pilot.press("full_stop")  # next layer

    await snapshot(demo_model_path(), "attention_view_demo", attention)


async def test_cross_layer_view(tiny_models):
    async def cross(app, pilot):
        await pilot.press("2")

    await snapshot(tiny_models("llama"), "cross_layer_view", cross)
