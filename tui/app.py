"""The explorer: a sidebar tree of the real model, a main area of views, a lessons pane, a status bar.

The app never computes on tensors. Every question goes to the model worker through one `ExplorerClient`,
from Textual thread workers that only post results back; handlers on the views own the state. Moving the
selection starts a new request in the same group, which cancels the stale one (here and in the worker).
"""

from __future__ import annotations

import gc
import importlib
import threading
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, Input

from tui.model_tree import ModelTree
from tui.palette import ExplorerCommands
from tui.status_bar import StatusBar
from tui.views.summary import SummaryView

VIEWS = ("summary", "tensor", "module", "cross-layer", "attention", "tokens", "lens")
#: Everything but the first screen, by widget id: imported and mounted when first needed, or in idle time
#: after the first frame (so the tree is interactive sooner: plotext, Markdown and the views' widgets wait).
DEFERRED: dict[str, tuple[str, str]] = {
    "tensor": ("tui.views.tensor", "TensorView"),
    "module": ("tui.views.module", "ModuleView"),
    "cross-layer": ("tui.views.cross_layer", "CrossLayerView"),
    "attention": ("tui.views.attention", "AttentionView"),
    "tokens": ("tui.views.tokens", "TokensView"),
    "lens": ("tui.views.lens", "LensView"),
    "lessons": ("tui.views.lessons", "LessonsPane"),
}


class ExplorerApp(App[None]):
    """`llm-internals [MODEL]`."""

    CSS_PATH = "app.tcss"
    TITLE = "llm-internals"
    COMMANDS = App.COMMANDS | {ExplorerCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("slash", "search", "Search", id="tree.search"),
        Binding("1", "view('summary')", "Model", id="view.summary"),
        Binding("2", "view('cross-layer')", "Layers", id="view.cross_layer"),
        Binding("3", "view('attention')", "Attention", id="view.attention"),
        Binding("4", "view('tokens')", "Tokens", id="view.tokens"),
        Binding("5", "view('lens')", "Lens", id="view.lens"),
        Binding("f2", "toggle_lessons", "Lessons", id="app.lessons"),
        Binding("ctrl+b", "toggle_sidebar", "Tree", show=False, id="app.sidebar"),
        Binding("left_square_bracket", "back", "Back", id="nav.back"),
        Binding("right_square_bracket", "forward", "Forward", id="nav.forward"),
        Binding("ctrl+s", "export", "Export", id="app.export"),
        Binding("r", "restart_worker", "Restart worker", show=False, id="worker.restart"),
        Binding("ctrl+l", "worker_log", "Worker log", show=False, id="worker.log"),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False, id="app.theme"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, client, model_label: str = "", initial_info: dict[str, Any] | None = None,
                 tune_gc: bool = False, **kwargs: Any) -> None:
        """`tune_gc`: once every view is built, freeze what exists and make full garbage collections rarer
        (process-wide, so only the `llm-internals` process sets it, not tests that run many apps)."""
        super().__init__(**kwargs)
        self.tune_gc = tune_gc
        self.client = client
        self.initial_info = initial_info
        #: True while the tree shown is the provisional one read from file headers (internals.provisional_info).
        self.info_provisional = bool(initial_info and initial_info.get("provisional"))
        #: Set when the worker refuses the model after a provisional tree was drawn: the app exits with it.
        self.startup_error: str | None = None
        self.model_label = model_label
        self._mounting: set[str] = set()
        self._imported: set[str] = set()  # DEFERRED modules imported by the background import thread
        self._import_thread: threading.Thread | None = None
        self.summary: dict[str, Any] | None = None
        self.nodes: list[dict[str, Any]] = []
        self.node_by_name: dict[str, dict[str, Any]] = {}
        self.history: list[str] = []
        self.future: list[str] = []
        self.current_view = "summary"

    # --- layout -------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Input(placeholder="search tensors (Enter: next match)", id="search")
                yield ModelTree(id="tree")
            # Only the first screen is built before the first frame; the other views (DEFERRED) follow.
            with ContentSwitcher(initial="summary", id="views"):
                yield SummaryView(id="summary")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        from tui.keymap import load_keymap

        keymap, problem = load_keymap()
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="warning", timeout=8)
        self.query_one("#search").display = False
        self.query_one(StatusBar).set_model(self.model_label)
        if self.initial_info:  # cached or provisional: the tree is drawn before the worker answers
            self._model_info_loaded(self.initial_info["summary"], self.initial_info["tree"])
            if self.info_provisional:
                self.query_one(StatusBar).set_state("starting", "tree read from the file headers; transformers is building the exact one")
        self.load_model_info()
        self.poll_status()
        self.status_timer = self.set_interval(2.0, self.poll_status)
        # the other views follow once the first frame is out and the loop has been idle a moment
        self.call_after_refresh(self.set_timer, 0.3, self._mount_next_deferred)

    # --- model info ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model-info", exit_on_error=False)
    def load_model_info(self) -> None:
        try:
            summary = self.client.summary()
            nodes = self.client.tree()
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.call_from_thread(self._model_info_failed, exc)
            return
        self.call_from_thread(self._model_info_loaded, summary, nodes, True)

    def _model_info_failed(self, exc: BaseException) -> None:
        if self._mounting - self._mounted_views():
            self.set_timer(0.05, partial(self._model_info_failed, exc))
            return  # exiting while a view mounts would fail its mount
        from internals.errors import ModelRefused

        if self.info_provisional and isinstance(exc, ModelRefused):
            # The worker refused the model (unknown architecture, damaged file...): the same one error line
            # and exit status 2 as when it is refused before the screen opens.
            self.startup_error = str(exc)
            self.exit(return_code=2)
            return
        self.worker_failed(exc)

    def _model_info_loaded(self, summary: dict[str, Any], nodes: list[dict[str, Any]], exact: bool = False) -> None:
        if exact and self.info_provisional:
            self.info_provisional = False
            self.query_one(StatusBar).set_state("starting")
            self.poll_status()
        if summary == self.summary and nodes == self.nodes:
            return  # the worker confirmed what the cache showed: keep the tree as the user left it
        replacing = bool(self.nodes)
        self.summary = summary
        self.nodes = nodes
        self.node_by_name = {n["name"]: n for n in nodes}
        self.query_one(ModelTree).populate(nodes, summary)
        self.query_one(SummaryView).show(summary)
        self.query_one(StatusBar).set_model(f"{summary.get('architecture') or 'model'} · {self.model_label}")
        for view_id, args in (("lessons", (summary, nodes)), ("attention", (summary,))):
            view = self.view(view_id, mount=False)
            if view is not None:  # else it reads the model from the app when it mounts
                view.set_model(*args)
        if not replacing:
            self.query_one(ModelTree).focus()
        elif self.current_view in ("tensor", "module") and self.history:
            # redraw the open node from the exact tree (module classes, tied and converted parameters)
            name = self.history[-1]
            if name in self.node_by_name:
                self.open_node(name, record=False)
            else:
                self.show_view("summary")

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def poll_status(self) -> None:
        try:
            status = self.client.status()
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.worker_failed, exc)
            return
        self.call_from_thread(self.query_one(StatusBar).set_status, status)

    def show_progress(self, fraction: float, message: str) -> None:
        """Loading progress reported by a request: drawn in the status bar until the next status poll."""
        bar = self.query_one(StatusBar)
        if fraction >= 1.0:
            bar.set_state("ready", message)
        else:
            bar.set_state(f"loading {100 * fraction:.0f}%", message)

    def worker_failed(self, exc: BaseException) -> None:
        from internals.worker.client import WorkerCrashed

        if isinstance(exc, WorkerCrashed):
            self.query_one(StatusBar).set_crashed(str(exc))
        else:
            self.notify(str(exc), severity="error", timeout=6)

    def action_worker_log(self) -> None:
        path = getattr(self.client, "log_path", None)
        if not path:
            self.notify("this explorer's model runs in a shared worker or in this process: its log is where it was started",
                        severity="warning")
            return
        from tui.screens import LogScreen

        self.push_screen(LogScreen(path))

    def action_restart_worker(self) -> None:
        restart = getattr(self.client, "restart", None)
        if restart is None:
            self.notify("this explorer is attached to a shared worker: restart it where it runs", severity="warning")
            return
        self.query_one(StatusBar).set_state("starting")
        self._restart()

    @work(thread=True, exclusive=True, group="restart", exit_on_error=False)
    def _restart(self) -> None:
        try:
            self.client.restart()
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.worker_failed, exc)
            return
        self.call_from_thread(self.notify, "worker restarted")
        self.call_from_thread(self.poll_status)

    # --- navigation ---------------------------------------------------------------------------------
    @on(ModelTree.NodePicked)
    def _node_picked(self, event: ModelTree.NodePicked) -> None:
        self.open_node(event.name, record=True)

    # --- views, mounted on demand ---------------------------------------------------------------------
    def view(self, view_id: str, mount: bool = True) -> Widget | None:
        """The mounted view (or lessons pane) `view_id`; None while it is not mounted yet, and then, with
        `mount`, start mounting it (its module is imported on first use)."""
        for widget in self.query(f"#{view_id}"):
            return widget if widget.is_mounted else None
        if mount and view_id in DEFERRED and view_id not in self._mounting:
            parent = self.query("#body" if view_id == "lessons" else "#views")
            if not parent:  # another screen is up (help, export) or the app is closing: later
                return None
            module, name = DEFERRED[view_id]
            widget = getattr(importlib.import_module(module), name)(id=view_id)
            widget.display = False  # the content switcher shows one view; the lessons pane opens with F2
            self._mounting.add(view_id)
            parent.first().mount(widget)
        return None

    def _mounted_views(self) -> set[str]:
        return {view_id for view_id in DEFERRED if self.view(view_id, mount=False) is not None}

    def _once_mounted(self, view_id: str, callback, *args: Any) -> bool:
        """False when `view_id` is mounted; else mount it, call `callback(*args)` again shortly, return True."""
        if self.view(view_id) is not None:
            return False
        self.set_timer(0.02, partial(callback, *args))
        return True

    @property
    def all_views_mounted(self) -> bool:
        return self._mounted_views() == set(DEFERRED)

    def _mount_next_deferred(self) -> None:
        """After the first frame: import the deferred views' modules in a thread (the event loop stays free),
        then mount one view per idle moment, so that the first switch to each is as fast as the next."""
        if self._import_thread is None:
            self._import_thread = threading.Thread(target=self._import_deferred, name="import-views", daemon=True)
            self._import_thread.start()
        if not self.is_running:
            return
        missing = [view_id for view_id in DEFERRED if view_id not in self._mounting]
        if missing:
            if DEFERRED[missing[0]][0] in self._imported:
                self.view(missing[0])
        elif self.all_views_mounted:
            if not self.tune_gc:
                return
            # Everything built so far lives as long as the app: keep it out of the garbage collector's passes,
            # and make full passes rarer. Textual keeps ~100k cached render objects alive, and a full pass
            # over them stalled a keypress by 0.1-0.4 s now and then; the keypress benchmark measures this.
            gc.collect()
            gc.freeze()
            gc.set_threshold(5_000, 10, 100)
            return
        self.set_timer(0.05, self._mount_next_deferred)

    def _import_deferred(self) -> None:
        for module, _ in DEFERRED.values():
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the main thread's own import will raise it where it is shown
                pass
            self._imported.add(module)

    def open_node(self, name: str, record: bool = True, select_in_tree: bool = False) -> None:
        node = self.node_by_name.get(name)
        if node is None:
            self.notify(f"no node named {name}", severity="warning")
            return
        if record and (not self.history or self.history[-1] != name):
            self.history.append(name)
            self.future.clear()
        if select_in_tree:
            self.query_one(ModelTree).select_name(name)
        view_id = "summary" if name == "" else "tensor" if node["kind"] == "parameter" else "module"
        if view_id != "summary" and self._once_mounted(view_id, self.open_node, name, False, select_in_tree):
            return
        if view_id == "tensor":
            self.view("tensor").show(node)
        elif view_id == "module":
            children = [n for n in self.nodes if n["parent"] == name]
            self.view("module").show(node, children, self.summary or {})
        self.show_view(view_id)

    def show_view(self, view: str) -> None:
        if view != "summary" and self._once_mounted(view, self.show_view, view):
            return
        self.current_view = view
        self.query_one("#views", ContentSwitcher).current = view
        target = self.query_one(f"#{view}")
        activate = getattr(target, "activate", None)
        if activate:
            activate()
        self.call_after_refresh(self._settle_focus, target)

    def _settle_focus(self, view: Widget) -> None:
        """Focus the view's own key target (attention heatmap, token strip, lens grid, cross-layer plot), else
        keep it in the sidebar: never leave it in a prompt box, where the view keys 1-5 would be typed."""
        focus_target = getattr(view, "focus_target", None)
        widget = focus_target() if focus_target else None
        if widget is not None:
            widget.focus()
            return
        focused = self.focused
        sidebar = self.query_one("#sidebar")
        lessons = self.query("#lessons")
        keep = focused is not None and (sidebar in focused.ancestors_with_self
                                        or any(pane in focused.ancestors_with_self for pane in lessons))
        if not keep and sidebar.display:
            self.query_one(ModelTree).focus()

    def action_view(self, view: str) -> None:
        self.show_view(view)

    def action_back(self) -> None:
        if len(self.history) > 1:
            self.future.append(self.history.pop())
            self.open_node(self.history[-1], record=False, select_in_tree=True)

    def action_forward(self) -> None:
        if self.future:
            name = self.future.pop()
            self.history.append(name)
            self.open_node(name, record=False, select_in_tree=True)

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        name = self.query_one(ModelTree).find_next(event.value)
        if name is None:
            self.notify(f"nothing matches {event.value!r}", severity="warning")
        else:
            self.open_node(name)

    @on(Input.Changed, "#search")
    def _search_live(self, event: Input.Changed) -> None:
        if event.value:
            self.query_one(ModelTree).find_next(event.value, restart=True)

    def key_escape(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.query_one(ModelTree).focus()

    def action_toggle_lessons(self) -> None:
        if self._once_mounted("lessons", self.action_toggle_lessons):
            return
        pane = self.view("lessons")
        pane.display = not pane.display
        if pane.display:
            pane.focus_list()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def open_lesson(self, lesson_id: str) -> None:
        if self._once_mounted("lessons", self.open_lesson, lesson_id):
            return
        pane = self.view("lessons")
        pane.display = True
        pane.open(lesson_id)

    def follow_link(self, target: str) -> None:
        """Move the explorer to an `llm:` link target (lessons, palette)."""
        from lessons.catalog import parse_link

        try:
            link = parse_link(target)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        if link.kind in ("tensor", "node"):
            self.open_node(link.name, select_in_tree=True)
        elif link.kind == "view":
            self.show_view(link.view)
        elif link.kind == "attention":
            if self._once_mounted("attention", self.follow_link, target):
                return
            self.show_view("attention")
            self.view("attention").focus_on(prompt=link.prompt, layer=link.layer, head=link.head)
        elif link.kind == "lesson":
            self.open_lesson(link.lesson)

    def action_help(self) -> None:
        from tui.screens import HelpScreen

        self.push_screen(HelpScreen(self))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    # --- export -------------------------------------------------------------------------------------
    def action_export(self) -> None:
        from tui.screens import ExportScreen

        self.push_screen(ExportScreen(default=f"llm-internals-{self.current_view}"), self._export_to)

    def _export_to(self, stem: str | None) -> None:
        if not stem:
            return
        from tui.screens import ConfirmScreen

        base = Path(stem).expanduser()
        targets = [base.with_suffix(".svg"), base.with_suffix(".json")]
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            self.push_screen(ConfirmScreen(f"{', '.join(existing)} exists. Overwrite?"),
                             lambda ok: self._write_export(base) if ok else self.notify("export cancelled"))
        else:
            self._write_export(base)

    def _write_export(self, base: Path) -> None:
        import json

        view = self.query_one(f"#{self.current_view}")
        data = getattr(view, "export_data", lambda: None)()
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            self.save_screenshot(filename=base.with_suffix(".svg").name, path=str(base.parent))
            with open(base.with_suffix(".json"), "w") as fh:
                json.dump({"view": self.current_view, "data": data}, fh, default=_json_default)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"saved {base.with_suffix('.svg')} and {base.with_suffix('.json')}")


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
