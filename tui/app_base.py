"""The typed base of `ExplorerApp` and of its mixins (tui/model_info.py, worker_status.py, deferred.py,
navigation.py, links.py, export.py, expert_layout.py).

Why: each mixin holds one job of the app but reads state and calls methods that another part defines (the
tree's nodes, the status bar, `show_view`, `open_node`...). Deriving every mixin from this class lets mypy check
those uses against real types. It only declares: the attributes are set in `ExplorerApp.__init__` (or a mixin's
`_init_*`), the reactives are the app's, and the cross-mixin methods are stubs seen by the type checker only, so
the run-time method resolution order of `ExplorerApp` is the one its mixins define.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from textual.app import App
from textual.reactive import var
from textual.timer import Timer

from tui.data_source import DataSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.widget import Widget
    from textual.worker import Worker

    from tui.deferred import ViewT
    from tui.model_tree import ModelTree
    from tui.status_bar import StatusBar
    from tui.views.summary import SummaryView


@runtime_checkable
class ReadsModelCard(Protocol):
    """A view that shows what the model card says (`tui.deferred.MODEL_VIEWS`): given it when it is read."""

    def set_model(self, summary: dict[str, Any], nodes: list[dict[str, Any]]) -> None: ...


@runtime_checkable
class ShowsDiff(Protocol):
    """The diff view (tui/views/diff.py) as the app drives it: the whole-model diff and the node it shows."""

    summary: dict[str, Any] | None
    node: dict[str, Any] | None

    def set_summary(self, summary: dict[str, Any]) -> None: ...
    def show(self, node: dict[str, Any]) -> None: ...


class ExplorerBase(App[None]):
    """The explorer's shared state and the methods its parts call on each other (see the module docstring)."""

    #: The view shown in the main area (a widget id of `tui.deferred.VIEWS`).
    current_view = var("summary")
    #: The tree sidebar (ctrl+b).
    sidebar_visible = var(True)
    #: The lessons pane (F2, Esc in the pane, `llm:lesson/...` links).
    lessons_visible = var(False)

    #: The views that read the model card (tui/deferred.py).
    MODEL_VIEWS: ClassVar[tuple[str, ...]]

    # --- set in ExplorerApp.__init__ --------------------------------------------------------------------
    client: DataSource
    tune_gc: bool
    initial_info: dict[str, Any] | None
    info_provisional: bool
    startup_error: str | None
    model_label: str
    summary: dict[str, Any] | None
    nodes: list[dict[str, Any]]
    node_by_name: dict[str, dict[str, Any]]
    history: list[str]
    future: list[str]
    model_tree: ModelTree
    summary_view: SummaryView
    status_bar: StatusBar
    status_timer: Timer
    # --- tui/diff_badges.py (with --base) -----------------------------------------------------------------
    compare_base: str | None = None
    diff_summary: dict[str, Any] | None = None
    # --- set in DeferredViewsMixin._init_deferred ---------------------------------------------------------
    _mounting: set[str]
    _imported: set[str]
    _import_thread: threading.Thread | None
    # --- set in ExpertLayoutMixin._init_expert_layout -----------------------------------------------------
    expert_layout: str
    shown_nodes: list[dict[str, Any]]

    if TYPE_CHECKING:
        # tui/deferred.py
        def view(self, view_id: str, mount: bool = True) -> Widget | None: ...
        def mounted(self, view_id: str, kind: type[ViewT]) -> ViewT: ...
        def _mounted_views(self) -> set[str]: ...
        def _once_mounted(self, view_id: str, callback: Callable[..., Any], *args: Any) -> bool: ...
        def _mount_next_deferred(self) -> None: ...
        def _init_deferred(self) -> None: ...

        # tui/navigation.py
        def open_node(self, name: str, record: bool = True, select_in_tree: bool = False) -> None: ...
        def show_view(self, view: str) -> None: ...
        def _settle_focus(self, view: Widget) -> None: ...

        # tui/links.py
        def _layout_lessons(self) -> None: ...
        def follow_link(self, target: str) -> None: ...
        def open_lesson(self, lesson_id: str) -> None: ...

        # tui/spectra.py
        def open_spectrum(self, name: str | None = None) -> None: ...
        def show_model_spectra(self) -> None: ...

        # tui/worker_status.py
        def poll_status(self) -> Worker[None]: ...
        def worker_failed(self, exc: BaseException) -> None: ...

        # tui/model_info.py
        def model_info_loaded(self, summary: dict[str, Any], nodes: list[dict[str, Any]], exact: bool = False) -> None: ...

        # tui/expert_layout.py
        def _init_expert_layout(self) -> None: ...
        def draw_tree(self) -> None: ...
