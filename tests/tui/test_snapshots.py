"""Snapshots of the main screens through pytest-textual-snapshot (`snap_compare`): the SVG of the screen is
compared with tests/tui/__snapshots__/test_snapshots/*.svg. After an intended change:
`./scripts/test tests/tui/test_snapshots.py --snapshot-update`, then look at the new SVGs (e.g. cairosvg to
PNG) before committing them; a failure writes `snapshot_report.html` to compare the two.

The explorer runs on tiny real models through the in-process client; the tensor view, whose histogram is a
plotext plot, is drawn alone from the recorded demo answers of the fake data source (tests/tui/views), so
the same numbers give the same plot every run.
"""

from __future__ import annotations

from views.harness import FakeSource, ViewApp

from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from tui.app import ExplorerApp

SIZE = (120, 40)


class StableClient(InProcessClient):
    """Memory figures and temporary paths change from run to run; a snapshot must not."""

    def status(self):
        loaded = bool(super().status().get("loaded"))
        return {"model": "tiny", "pid": 1, "loaded": loaded, "device": "cpu", "dtype": "float32", "rss_bytes": 2**30}

    def summary(self):
        return {**super().summary(), "path": "tiny-llama"}


async def settle(pilot) -> None:
    for _ in range(2):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()


def explorer(folder) -> ExplorerApp:
    return ExplorerApp(StableClient(ModelService(open_model(str(folder)))), model_label="tiny llama")


def steps(*keys: str):
    """`run_before`: settle the explorer, press `keys` (settling after each), then draw one status poll."""

    async def run_before(pilot) -> None:
        app = pilot.app
        app.theme = "textual-dark"
        app.status_timer.stop()  # the status bar is drawn from one poll at the end, not from a race with one
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        app.poll_status()
        await settle(pilot)
        await pilot.pause()

    return run_before


def test_model_card(snap_compare, tiny_models):
    assert snap_compare(explorer(tiny_models("llama")), terminal_size=SIZE, run_before=steps())


def test_attention_view_of_the_demo_model(snap_compare):
    """Layer 1 of the shipped demo model: its induction heads, grouped by the KV head they share."""
    from internals.demo_path import demo_model_path

    assert snap_compare(explorer(demo_model_path()), terminal_size=SIZE, run_before=steps("3", "full_stop"))


def test_cross_layer_view(snap_compare, tiny_models):
    assert snap_compare(explorer(tiny_models("llama")), terminal_size=SIZE, run_before=steps("2"))


def test_tensor_view_from_the_fake_data_source(snap_compare):
    """Statistics, the 64-bin histogram (plotext) and the weight heatmap of the demo model's layer-1 q_proj."""
    from tui.views.tensor import TensorView

    source = FakeSource()
    name = "model.layers.1.self_attn.q_proj.weight"
    node = next(n for n in source.data["tree"] if n["name"] == name)
    app = ViewApp(TensorView(data_source=source))

    async def show(pilot) -> None:
        pilot.app.theme = "textual-dark"
        pilot.app.view.show(node)
        await settle(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=show)


def test_lessons_pane(snap_compare, tiny_models):
    """The GQA lesson open at 120×40: it takes the main area (the model card is not squeezed beside it), the
    demo line and the lesson's numbers for the tiny model."""

    async def open_lesson(pilot) -> None:
        await steps()(pilot)
        pilot.app.open_lesson("gqa")
        await settle(pilot)
        await pilot.pause()

    assert snap_compare(explorer(tiny_models("llama")), terminal_size=SIZE, run_before=open_lesson)
