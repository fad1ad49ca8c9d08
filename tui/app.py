"""The explorer: a sidebar tree of the real model, a main area of views, a lessons pane, a status bar.

The app never computes on tensors. Every question goes to the model worker through one data source (an
`ExplorerClient`), from Textual thread workers that only post messages back; handlers own the state. The
views get the data source when they are built and talk back with the messages of `tui.messages`. Each job
of the app is a mixin in its own module: model info (`tui.model_info`), the worker's status
(`tui.worker_status`), views built in idle time (`tui.deferred`), history and search (`tui.navigation`),
`llm:` links and lessons (`tui.links`), export (`tui.export`); keys can be remapped (`tui.keymap`).
Layout state (open view, sidebar, lessons pane) is reactive and drawn by CSS classes (`app.tcss`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.widgets import ContentSwitcher, Footer, Input, Static

from tui.deferred import DEFERRED, DeferredViewsMixin
from tui.diff_badges import DiffBadgesMixin
from tui.expert_layout import ExpertLayoutMixin
from tui.export import ExportMixin
from tui.links import LinksMixin
from tui.model_info import ModelInfoMixin
from tui.model_tree import ModelTree
from tui.navigation import NavigationMixin
from tui.palette import ExplorerCommands
from tui.status_bar import StatusBar
from tui.views.summary import SummaryView
from tui.worker_status import WorkerStatusMixin

VIEWS = ("summary", "tensor", "module", "cross-layer", "attention", "tokens", "lens", "chat-template", "experts",
         "activations", "patching", "attribution", "diff")

__all__ = ["DEFERRED", "VIEWS", "ExplorerApp"]


class ExplorerApp(ModelInfoMixin, WorkerStatusMixin, DeferredViewsMixin, NavigationMixin, LinksMixin, ExportMixin,
                  ExpertLayoutMixin, DiffBadgesMixin, App[None]):
    """`llm-internals [MODEL]`."""

    CSS_PATH = ["app.tcss", "screens.tcss"]
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
        Binding("6", "view('activations')", "Activations", show=False, id="view.activations"),
        Binding("7", "view('patching')", "Patching", show=False, id="view.patching"),
        Binding("8", "view('attribution')", "Attribution", show=False, id="view.attribution"),
        Binding("9", "view('experts')", "Experts", show=False, id="view.experts"),
        Binding("e", "toggle_expert_layout", "Experts layout", show=False, id="tree.expert_layout"),
        Binding("0", "view('diff')", "Diff", show=False, id="view.diff"),
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

    #: The view shown in the main area (a widget id of `VIEWS`).
    current_view = var("summary")
    #: The tree sidebar (ctrl+b).
    sidebar_visible = var(True)
    #: The lessons pane (F2, Esc in the pane, `llm:lesson/...` links).
    lessons_visible = var(False)

    def __init__(self, client, model_label: str = "", initial_info: dict[str, Any] | None = None,
                 tune_gc: bool = False, compare_base: str | None = None, **kwargs: Any) -> None:
        """`client`: the data source of every view (an `ExplorerClient`). `tune_gc`: once every view is built,
        freeze what exists and make full garbage collections rarer (process-wide, so only the
        `llm-internals` process sets it, not tests that run many apps). `compare_base`: the base model the
        worker compares with (`--base`): diff badges in the tree and the diff view."""
        super().__init__(**kwargs)
        self.compare_base = compare_base
        self.diff_summary = None
        self.tune_gc = tune_gc
        self.client = client
        self.initial_info = initial_info
        #: True while the tree shown is the provisional one read from file headers (internals.provisional_info).
        self.info_provisional = bool(initial_info and initial_info.get("provisional"))
        #: Set when the worker refuses the model after a provisional tree was drawn: the app exits with it.
        self.startup_error: str | None = None
        self.model_label = model_label
        self._init_deferred()
        self.summary: dict[str, Any] | None = None
        self.nodes: list[dict[str, Any]] = []
        self.node_by_name: dict[str, dict[str, Any]] = {}
        self._init_expert_layout()
        self.history: list[str] = []
        self.future: list[str] = []
        # held, not queried: handlers of messages from thread workers run while a modal screen is up too
        self.model_tree = ModelTree(id="tree")
        self.summary_view = SummaryView(id="summary")
        self.status_bar = StatusBar(id="status")

    # --- layout -------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Input(placeholder="search tensors (Enter: next match)", id="search")
                yield Static("", id="tree-note")  # which layout the experts are drawn in (tui.expert_layout)
                yield self.model_tree
            # Only the first screen is built before the first frame; the other views (DEFERRED) follow.
            with ContentSwitcher(initial="summary", id="views"):
                yield self.summary_view
        yield self.status_bar
        yield Footer()

    def watch_current_view(self, view: str) -> None:
        self.query_one("#views", ContentSwitcher).current = view

    def watch_sidebar_visible(self, visible: bool) -> None:
        self.set_class(not visible, "-no-sidebar")

    def watch_lessons_visible(self, visible: bool) -> None:
        self.set_class(visible, "-lessons")
        self._layout_lessons()

    def on_resize(self, event) -> None:
        self.call_after_refresh(self._layout_lessons)

    def on_mount(self) -> None:
        from tui.keymap import load_keymap

        keymap, problem = load_keymap()
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="warning", timeout=8)
        self.query_one("#search").display = False
        self.status_bar.set_model(self.model_label)
        if self.initial_info:  # cached or provisional: the tree is drawn before the worker answers
            self.model_info_loaded(self.initial_info["summary"], self.initial_info["tree"])
            if self.info_provisional:
                self.status_bar.set_state("starting", "tree read from the file headers; transformers is building the exact one")
        self.load_model_info()
        self.load_diff_summary()
        self.poll_status()
        self.status_timer = self.set_interval(2.0, self.poll_status)
        # the other views follow once the first frame is out and the loop has been idle a moment
        self.call_after_refresh(self.set_timer, 0.3, self._mount_next_deferred)

    def action_toggle_sidebar(self) -> None:
        self.sidebar_visible = not self.sidebar_visible

    def action_help(self) -> None:
        from tui.screens import HelpScreen

        self.push_screen(HelpScreen(self.BINDINGS))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
