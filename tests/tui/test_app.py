"""The explorer driven with Pilot, on tiny real models through the in-process client (same codec as the socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.pilot import Pilot

from internals.model import open_model
from internals.worker.client import InProcessClient, WorkerCrashed
from internals.worker.service import ModelService
from tui.app import ExplorerApp
from tui.palette import ExplorerCommands

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def make_app(folder) -> ExplorerApp:
    return ExplorerApp(InProcessClient(ModelService(open_model(str(folder)))), model_label="tiny")


def model_folder(tiny_models, kind: str):
    """A tiny fixture model, or the shipped demo model for kind "demo"."""
    from internals.demo_path import demo_model_path

    return demo_model_path() if kind == "demo" else tiny_models(kind)


async def _until(condition, seconds: float, step: float = 0.025) -> None:
    """Poll `condition()` every `step` seconds until it holds or `seconds` have passed (the caller asserts)."""
    import asyncio

    for _ in range(int(seconds / step)):
        if condition():
            return
        await asyncio.sleep(step)


async def settle(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


@asynccontextmanager
async def started(app: ExplorerApp, size: tuple[int, int] = (120, 40)) -> AsyncIterator[Pilot]:
    """`async with started(app) as pilot:` — run the app and wait until its start-up work is done."""
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        yield pilot


async def press(app, pilot, *keys: str) -> None:
    """Press the keys, then let the work they start finish (switching views, stepping layers...)."""
    await pilot.press(*keys)
    await settle(app, pilot)


@pytest.mark.parametrize("kind", ["demo", "qwen2", "llama"])
async def test_every_view_renders(tiny_models, kind):
    app = make_app(model_folder(tiny_models, kind))
    async with started(app) as pilot:
        assert app.summary["architecture"].endswith("ForCausalLM")
        assert app.query_one("#summary").data == app.summary and "Architecture" in app.export_screenshot()
        app.open_node("model.layers.1.self_attn.q_proj.weight", select_in_tree=True)
        await settle(app, pilot)
        assert app.current_view == "tensor"
        tensor_view = app.query_one("#tensor")
        assert tensor_view.data["name"] == "model.layers.1.self_attn.q_proj.weight"
        assert tensor_view.preview["values"].ndim == 2
        for key, view in (("2", "cross-layer"), ("3", "attention"), ("4", "tokens"), ("5", "lens"), ("6", "activations"),
                          ("7", "patching"), ("8", "attribution")):
            app.query_one("#tree").focus()
            await press(app, pilot, key)
            assert app.current_view == view
            data = app.query_one(f"#{view}").data
            assert data, f"{view} has no data"
            assert not app.query_one(f"#{view}").query_one(".view-message").has_class("error")
        attention = app.query_one("#attention").data
        assert attention["weights"].shape[0] == app.summary["num_attention_heads"]


async def test_a_100_layer_tree_opens_and_moves(tmp_path):
    """The 1.5B reference config at 100 layers, from config alone: ~1,200 tree nodes, navigated by keys."""
    import json

    from tests_helpers import DATA

    config = json.loads((DATA / "deepseek-r1-distill-qwen-1.5b.config.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "num_hidden_layers": 100}))
    app = make_app(path)
    async with started(app, (100, 30)) as pilot:
        tree = app.query_one("#tree")
        assert app.summary["num_layers"] == 100 and "model.layers.99.mlp.down_proj.weight" in tree._by_name
        tree.root.expand_all()
        await pilot.pause()
        for _ in range(30):
            await pilot.press("down")
        await pilot.press("end")
        await pilot.pause()
        assert tree.cursor_node.data == "lm_head.weight"
        app.open_node("model.layers.73.self_attn.k_proj.weight", select_in_tree=True)
        await settle(app, pilot)
        assert tree.cursor_node.data == "model.layers.73.self_attn.k_proj.weight"


async def test_views_mount_on_demand_and_then_in_idle_time(tiny_models):
    """A view asked for as soon as the app runs (before its idle-time mount) is mounted at once, and soon every
    view is."""
    import asyncio

    app = make_app(tiny_models("llama"))
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.nodes:  # the tree has arrived; the idle-time mounts start 0.3 s after the first frame
            await asyncio.sleep(0.005)
        app.open_node("model.layers.0.mlp.down_proj.weight", select_in_tree=True)
        await settle(app, pilot)
        await asyncio.sleep(0.1)
        await settle(app, pilot)
        assert app.current_view == "tensor" and app.query_one("#tensor").data["name"] == "model.layers.0.mlp.down_proj.weight"
        await _until(lambda: app.all_views_mounted, 5, 0.05)
        assert app.all_views_mounted and not app.query_one("#lessons").display


def _app_whose_stats_wait(tiny_models, monkeypatch, foreground_wait_s: float):
    """The explorer on a tiny llama whose tensor statistics are answered only once the returned event is set
    (30 s at most), with the app's foreground bound (`FOREGROUND_WAIT_S`) set to `foreground_wait_s`."""
    import threading

    from tui import deferred

    monkeypatch.setattr(deferred, "FOREGROUND_WAIT_S", foreground_wait_s)
    release = threading.Event()
    app = make_app(tiny_models("llama"))
    stats = app.client.tensor_stats

    def held_stats(*args, **kwargs):
        release.wait(30)
        return stats(*args, **kwargs)

    app.client.tensor_stats = held_stats
    return app, release


async def _open_down_proj(app) -> None:
    import asyncio

    while not app.nodes:
        await asyncio.sleep(0.005)
    app.open_node("model.layers.0.mlp.down_proj.weight", select_in_tree=True)


async def test_the_view_on_screen_is_built_before_the_others(tiny_models, monkeypatch):
    """While the view the user opened waits for its first answer, the other views are neither imported nor
    mounted (the event loop and the GIL go to it); once it is drawn, the background building goes on."""
    import asyncio

    from tui import deferred

    # the app stops holding back after FOREGROUND_WAIT_S of waiting; on a loaded machine the test's own sleeps
    # can overshoot that, so the bound is lifted here (the next test covers the bound itself)
    app, answer = _app_whose_stats_wait(tiny_models, monkeypatch, 60.0)
    try:
        async with app.run_test(size=(120, 40)):
            await _open_down_proj(app)
            await _until(lambda: (view := app.view("tensor", mount=False)) is not None and view.waiting_for() > 0, 10)
            started = set(app._mounting)  # on a loaded machine the background may have begun before the request
            held_back = []
            for _ in range(40):  # 1 s: the background building would have started 0.3 s after the first frame
                await asyncio.sleep(0.025)
                held_back.append(not app._background_go.is_set())
            view = app.view("tensor", mount=False)
            state = (getattr(app, "_wanted_view", None), view and view._waiting, app.current_view, held_back)
            assert app._mounting == started, state  # no other view began to mount while this one waited
            assert sum(held_back) > len(held_back) // 2, state  # and the background was held back
            assert len(started) < len(deferred.DEFERRED) - 2  # the wait was not vacuous: most views still to build
            answer.set()
            await _until(lambda: app._background_go.is_set() and len(app._mounting) > len(started), 10)  # it goes on
            assert app.query_one("#tensor").data["name"] == "model.layers.0.mlp.down_proj.weight"
            assert app._background_go.is_set() and len(app._mounting) > len(started)
    finally:
        answer.set()


async def test_a_view_that_never_gets_its_answer_holds_the_others_back_only_so_long(tiny_models, monkeypatch):
    """FOREGROUND_WAIT_S bounds the holding back: an answer that never comes does not stop the building of the
    other views for good."""
    app, never = _app_whose_stats_wait(tiny_models, monkeypatch, 0.5)
    try:
        async with app.run_test(size=(120, 40)):
            await _open_down_proj(app)
            await _until(lambda: app.all_views_mounted, 30)
            view = app.view("tensor", mount=False)
            assert view is not None and view.waiting_for() > 0.5  # still waiting: the others did not wait for it
            assert app.all_views_mounted and app._background_go.is_set()
    finally:
        never.set()


async def test_tune_gc_freezes_what_the_built_app_holds(tiny_models):
    import gc

    before = gc.get_threshold()
    app = ExplorerApp(InProcessClient(ModelService(open_model(str(tiny_models("llama"))))), tune_gc=True)
    try:
        async with app.run_test(size=(100, 30)):
            await _until(gc.get_freeze_count, 10, 0.05)
            assert app.all_views_mounted and gc.get_freeze_count() > 0 and gc.get_threshold() == (5_000, 10, 100)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_view_keys_are_never_typed_into_a_prompt_box(tiny_models):
    """Each view focuses its own key target (or the tree), so 1-5 keep switching views."""
    app = make_app(tiny_models("llama"))
    async with started(app) as pilot:
        expected = {"3": ("attention", "attention-head"), "4": ("tokens", "tokens-strip"), "5": ("lens", "lens-grid"),
                    "2": ("cross-layer", "cross-plot"), "1": ("summary", "tree")}
        for key in ["3", "1", "4", "1", "5", "2", "4", "3", "1"]:
            await press(app, pilot, key)
            view, focus_id = expected[key]
            assert app.current_view == view and app.focused is not None and app.focused.id == focus_id, (key, app.focused)
        assert app.query_one("#tokens-input").value == app.query_one("#tokens").text.replace("\n", "⏎")


async def test_patch_this_prompt_takes_the_shown_views_prompt(tiny_models):
    """The palette's "patch: this prompt": the lens view's prompt becomes the clean (and, to edit, the
    corrupted) prompt; nothing runs until Enter."""
    app = make_app(tiny_models("llama"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await settle(app, pilot)
        app.patch_this_prompt()
        await settle(app, pilot)
        patching, prompt = app.query_one("#patching"), app.query_one("#lens").prompt
        assert app.current_view == "patching" and patching.clean == prompt and patching.data is None
        assert app.focused is app.query_one("#patching-corrupt") and app.focused.value == prompt
        titles = [title for title, _, _ in ExplorerCommands(app.screen)._commands()]
        assert "patch: this prompt" in titles and "view: patching" in titles


async def test_navigation_back_forward_and_search(tiny_models):
    app = make_app(tiny_models("qwen2"))
    async with started(app, (100, 30)) as pilot:
        app.open_node("model.layers.0.mlp.up_proj.weight")
        app.open_node("model.layers.2.mlp")
        await settle(app, pilot)
        assert app.current_view == "module"
        await press(app, pilot, "left_square_bracket")
        assert app.current_view == "tensor" and app.history[-1] == "model.layers.0.mlp.up_proj.weight"
        await press(app, pilot, "right_square_bracket")
        assert app.history[-1] == "model.layers.2.mlp"
        await pilot.press("slash")
        for ch in "down_proj":
            await pilot.press(ch)
        await press(app, pilot, "enter")
        assert app.history[-1].endswith("down_proj") or app.history[-1].endswith("down_proj.weight")


async def test_attention_keys_step_layer_and_head(tiny_models):
    app = make_app(tiny_models("qwen2"))
    async with started(app) as pilot:
        await press(app, pilot, "3")
        view = app.query_one("#attention")
        assert app.focused is view.query_one("#attention-head")  # the keys work right after switching
        await press(app, pilot, "full_stop")
        assert view.data["layer"] == 1
        await pilot.press("equals_sign")
        await pilot.pause()
        assert view.head_idx == 1
        await pilot.press("down", "right")
        await pilot.pause()
        assert "→ key" in str(view.query_one("#attention-info").render())


async def test_lessons_pane_and_links(tiny_models):
    app = make_app(tiny_models("qwen2"))
    async with started(app, (140, 40)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        app.open_lesson("gqa")
        await pilot.pause()
        pane = app.query_one("#lessons")
        assert pane.display and pane.current == "gqa"
        app.follow_link("llm:tensor/model.layers.1.self_attn.k_proj.weight")
        await settle(app, pilot)
        assert app.current_view == "tensor" and app.history[-1] == "model.layers.1.self_attn.k_proj.weight"
        app.follow_link("llm:attention?layer=2&head=1&prompt=hello%20hello")
        await settle(app, pilot)
        assert app.current_view == "attention" and app.query_one("#attention").data["layer"] == 2


async def test_small_terminal_and_light_theme(tiny_models):
    app = make_app(tiny_models("llama"))
    async with started(app, (80, 24)) as pilot:
        await pilot.press("ctrl+t")
        app.open_node("model.layers.0.mlp.down_proj.weight")
        await settle(app, pilot)
        assert app.theme == "textual-light"
        assert app.query_one("#tensor").data is not None


async def test_export_writes_svg_and_json_and_never_overwrites_silently(tiny_models, tmp_path):
    app = make_app(tiny_models("llama"))
    async with started(app, (100, 30)) as pilot:
        app.open_node("model.norm.weight")
        await settle(app, pilot)
        app._export_to(str(tmp_path / "view"))
        await pilot.pause()
        assert (tmp_path / "view.svg").exists() and (tmp_path / "view.json").exists()
        before = (tmp_path / "view.json").read_text()
        app._export_to(str(tmp_path / "view"))
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert (tmp_path / "view.json").read_text() == before


class CrashingClient(InProcessClient):
    crash = False

    def _request(self, method, params, group):
        if self.crash:
            raise WorkerCrashed("the worker crashed (exit status -9)")
        yield from super()._request(method, params, group)


async def test_worker_crash_is_reported(tiny_models):
    client = CrashingClient(ModelService(open_model(str(tiny_models("llama")))))
    app = ExplorerApp(client, model_label="tiny")
    async with started(app, (100, 30)) as pilot:
        client.crash = True
        app.open_node("model.layers.0.mlp.up_proj.weight")
        await settle(app, pilot)
        bar = app.query_one("#status")
        assert bar.state == "crashed" and "press r" in str(bar.render())


class BlockedClient(InProcessClient):
    """A worker that has not answered yet."""

    def __init__(self, service):
        super().__init__(service)
        import threading

        self.release = threading.Event()

    def _request(self, method, params, group):
        self.release.wait(10)
        yield from super()._request(method, params, group)


async def test_worker_log_opens_from_the_status_bar_key(tiny_models, tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("worker: listening\nerror: something the user should see\n")
    client = InProcessClient(ModelService(open_model(str(tiny_models("llama")))))
    client.log_path = str(log)  # what the managed worker client has
    app = ExplorerApp(client, model_label="tiny")
    async with started(app, (100, 30)) as pilot:
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert type(app.screen).__name__ == "LogScreen"
        assert "something the user should see" in str(app.screen.query_one("#log-text").render())
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "LogScreen"


async def test_cached_tree_is_drawn_before_the_worker_answers(tiny_models):
    service = ModelService(open_model(str(tiny_models("llama"))))
    info = {"summary": service.opened.summary(), "tree": service.opened.tree()}
    client = BlockedClient(service)
    app = ExplorerApp(client, model_label="tiny", initial_info=info)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.summary == info["summary"] and len(app.query_one("#tree")._by_name) == len(info["tree"])
        client.release.set()
        await settle(app, pilot)


async def test_provisional_tree_is_replaced_by_the_exact_one_keeping_the_cursor(tiny_models):

    from internals.provisional_info import provisional_model_info
    from internals.sources import resolve_source

    folder = tiny_models("qwen2")
    service = ModelService(open_model(str(folder)))
    client = BlockedClient(service)
    app = ExplorerApp(client, model_label="tiny", initial_info=provisional_model_info(resolve_source(str(folder))))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        tree = app.query_one("#tree")
        assert app.info_provisional and "provisional" in app.summary["layout"]
        assert "provisional:" in app.export_screenshot()  # the model card says so
        assert "starting" in str(app.query_one("#status").render())
        app.open_node("model.layers.1.mlp", select_in_tree=True)  # the user moves while the worker starts
        await _until(lambda: app.current_view == "module", 2, 0.02)
        await pilot.pause()
        assert "model.layers.1.mlp&#160;(?)" in app.export_screenshot()  # no module class before transformers
        tree.select_name("model.layers.1.mlp.up_proj.weight")
        await pilot.pause()
        client.release.set()
        await settle(app, pilot)
        assert not app.info_provisional and app.summary == service.opened.summary()
        assert tree.cursor_node.data == "model.layers.1.mlp.up_proj.weight"
        assert "Qwen2DecoderLayer" in str(tree._by_name["model.layers.1"].label)  # classes come from transformers
        assert "model.layers.1.mlp&#160;(Qwen2MLP)" in app.export_screenshot()  # the open view is redrawn too


class RefusingClient(InProcessClient):
    """A worker that exited because it could not open the model."""

    def _request(self, method, params, group):
        from internals.errors import ModelRefused

        raise ModelRefused("ViTConfig is not a causal language model that transformers can build")
        yield  # pragma: no cover


async def test_a_refused_model_closes_the_provisional_screen_with_its_error(tiny_models):
    from internals.provisional_info import provisional_model_info
    from internals.sources import resolve_source

    folder = tiny_models("llama")
    app = ExplorerApp(RefusingClient(ModelService(open_model(str(folder)))), model_label="tiny",
                      initial_info=provisional_model_info(resolve_source(str(folder))))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 2 and app.startup_error.startswith("ViTConfig is not")


async def test_long_prompt_attention_is_binned(tiny_models):
    app = make_app(tiny_models("qwen2"))
    async with started(app) as pilot:
        await press(app, pilot, "3")
        view = app.query_one("#attention")
        view.focus_on(prompt="abc " * 30, layer=0)  # 120 characters: more tokens than MAX_EXACT_TOKENS
        await settle(app, pilot)
        data = view.data
        assert data["bin_edges"] and data["weights"].shape[-1] == len(data["bin_edges"]) - 1 < data["num_tokens"]
        assert abs(float(data["weights"][0].sum(-1).mean()) - 1) < 1e-4
        assert len(view.labels()) == data["weights"].shape[-1]


async def test_status_bar_shows_loading_progress_then_ready(tiny_models):
    app = make_app(tiny_models("llama"))
    async with started(app, (120, 30)) as pilot:
        bar = app.query_one("#status")
        app.show_progress(0.4, "loading weights")
        await pilot.pause()
        assert "loading 40%" in str(bar.render())
        await press(app, pilot, "4")  # the tokens view needs the model: it loads in the worker
        app.poll_status()
        await settle(app, pilot)
        assert bar.state == "ready" and bar.status["loaded"] is True


async def test_lesson_demo_runs_in_the_worker_and_shows_its_result(tiny_models):
    app = make_app(tiny_models("qwen2"))
    async with started(app, (140, 40)) as pilot:
        app.open_lesson("peft")
        await pilot.pause()
        pane = app.query_one("#lessons")
        from lessons.demos.registry import DEMOS

        pane.demo_params = dict(DEMOS["lora"].quick)
        pane.query_one("#lesson-list").focus()
        await press(app, pilot, "d")
        status = str(pane.query_one("#demo-status").render())
        assert "demo finished" in status and "counts.trainable" in status, status
        assert pane.points.get("loss"), "no live points were plotted"


async def test_moe_model_views(tiny_models):
    app = make_app(tiny_models("mixtral"))
    async with started(app) as pilot:
        app.open_node("model.layers.0.mlp.gate.weight")  # the router: renamed on load, one stored tensor
        await settle(app, pilot)
        view = app.query_one("#tensor")
        assert view.data["name"] == "model.layers.0.block_sparse_moe.gate.weight" and view.preview is not None
        app.open_node("model.layers.0.mlp.experts.gate_up_proj")  # fused from 8 stored tensors
        await settle(app, pilot)
        assert view.data["name"] == "model.layers.0.mlp.experts.gate_up_proj" and len(view.data["experts"]) == 4
        await pilot.press("e")  # the tree draws the experts as stored; their tensors open too
        await settle(app, pilot)
        stored = "model.layers.0.block_sparse_moe.experts.3.w1.weight"
        assert stored in {n["name"] for n in app.shown_nodes} and "as stored" in str(app.query_one("#tree-note").render())
        app.open_node(stored)
        await settle(app, pilot)
        assert view.data["name"] == stored and view.preview is not None
        await pilot.press("2")
        await settle(app, pilot)
        assert "router" in app.query_one("#cross-layer").data["components"]


def app_with_keymap(tiny_models, tmp_path, monkeypatch, text: str) -> ExplorerApp:
    """An explorer whose user keymap file ($LLM_INTERNALS_KEYMAP) holds `text`."""
    keymap = tmp_path / "keymap.json"
    keymap.write_text(text)
    monkeypatch.setenv("LLM_INTERNALS_KEYMAP", str(keymap))
    return make_app(tiny_models("llama"))


async def test_keys_are_remapped_from_the_users_keymap_file(tiny_models, tmp_path, monkeypatch):
    app = app_with_keymap(tiny_models, tmp_path, monkeypatch, '{"view.attention": "a", "view.tokens": "t"}')
    async with started(app) as pilot:
        await press(app, pilot, "a")
        assert app.current_view == "attention"
        await press(app, pilot, "t")
        assert app.current_view == "tokens"


async def test_a_broken_keymap_file_is_reported_and_ignored(tiny_models, tmp_path, monkeypatch):
    app = app_with_keymap(tiny_models, tmp_path, monkeypatch, '{"view.attention": ')
    async with started(app) as pilot:
        assert any("was ignored" in n.message for n in app._notifications)
        await press(app, pilot, "3")  # the default keys still work
        assert app.current_view == "attention"


class _DemoRecorder:
    """Stands in for the worker's demo runner: records which demo a key started."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def run_demo(self, name, params=None, on_progress=None):
        self.started.append(name)
        yield {"result": {"final_loss": 0.5}}


async def test_a_lesson_opened_from_the_palette_takes_the_keyboard(tiny_models):
    """"lesson: DPO" from the command palette: the focus lands in the lesson, so `d` runs its demo at once and
    the footer offers it."""
    app = make_app(tiny_models("qwen2"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.model_tree.focus()
        while app.view("lessons") is None:
            await pilot.pause(0.05)
        pane = app.query_one("#lessons")
        pane.data_source = recorder = _DemoRecorder()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"lesson: DPO")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert pane.current == "dpo" and app.focused is not None and pane in app.focused.ancestors
        assert any(key == "d" and b.binding.show for key, b in app.active_bindings.items())
        await pilot.press("d")
        await settle(app, pilot)
        assert recorder.started == ["dpo"] and "demo finished" in str(pane.query_one("#demo-status").render())


async def test_a_lesson_takes_the_main_area_of_a_narrow_terminal(tiny_models):
    """120 columns: the lesson replaces the view (no squeezed model card); a link shows its view instead and F2
    returns to the lesson. 200 columns: the lesson sits beside the view."""
    app = make_app(tiny_models("qwen2"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.open_lesson("gqa")
        await settle(app, pilot)
        pane = app.query_one("#lessons")
        assert not app.query_one("#views").display and pane.size.width >= 80
        app.follow_link("llm:view/summary")
        await settle(app, pilot)
        assert not pane.display and app.query_one("#views").display and app.current_view == "summary"
        await pilot.press("f2")
        await settle(app, pilot)
        assert pane.display and pane.current == "gqa" and pane in app.focused.ancestors
        await pilot.resize_terminal(200, 50)
        await settle(app, pilot)
        assert pane.display and app.query_one("#views").display and app.query_one("#summary").size.width >= 60
