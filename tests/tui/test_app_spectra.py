"""The spectra in the whole explorer on the demo model (in-process client, real engine): the palette entries,
an `llm:spectrum/` link, the tree badges with their help line, and Export of the spectrum tab."""

from __future__ import annotations

import json

import pytest

from internals.demo_path import demo_model_path
from internals.model import open_model
from internals.spectrum import cache, spectrum_of
from internals.spectrum.model import is_flagged
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from tui.app import ExplorerApp

pytestmark = pytest.mark.anyio
Q = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def settle(app, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def test_palette_link_badges_and_export(tmp_path):
    cache.clear_memory()
    opened = open_model(str(demo_model_path()))
    app = ExplorerApp(InProcessClient(ModelService(opened)), model_label="demo")
    async with app.run_test(size=(130, 42)) as pilot:
        await settle(app, pilot)
        titles = [t for t, _, _ in __import__("tui.palette", fromlist=["x"]).ExplorerCommands(app.screen)._commands()]
        assert "view: spectrum" in titles and "spectrum: whole model" in titles
        app.follow_link(f"llm:spectrum/{Q}")
        await settle(app, pilot)
        tensor = app.query_one("#tensor")
        assert app.current_view == "tensor" and tensor.tab == "spectrum"
        expected = spectrum_of(opened.store, Q)  # from the cache the request filled: the same numbers
        assert tensor.spectrum["alpha_reading"] == expected["alpha_reading"]
        assert tensor.spectrum["num_spikes"] == expected["num_spikes"] > 0
        app._write_export(tmp_path / "spec")
        data = json.loads((tmp_path / "spec.json").read_text())["data"]
        assert data["tab"] == "spectrum" and data["spectrum"]["name"] == Q
        assert (tmp_path / "spec.svg").read_text().startswith("<svg")

        app.show_model_spectra()  # "spectrum: whole model"
        await settle(app, pilot)
        cross = app.query_one("#cross-layer")
        assert app.current_view == "cross-layer" and cross.metric == "alpha" and cross.spectra
        badges = app.model_tree.badges
        flagged = {s["name"] for s in (spectrum_of(opened.store, b["name"]) for b in cross.spectra["matrices"])
                   if is_flagged(s)}
        assert flagged and set(badges) == flagged
        name = sorted(flagged)[0]
        app.model_tree.select_name(name)
        await settle(app, pilot)
        help_line = app.query_one("#tree-help")
        assert help_line.display and badges[name]["alpha_reading"] in str(help_line.render())
