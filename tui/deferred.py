"""Views built after the first frame: their modules are imported in a thread, then one view is mounted per
idle moment, so the tree is interactive sooner and the first switch to each view is as fast as the next.
Once all are built, the process (the `llm-internals` app only) tunes the garbage collector.
"""

from __future__ import annotations

import gc
import importlib
import threading
from functools import partial
from typing import Any, TypeVar

from textual.widget import Widget

from tui.app_base import ExplorerBase, ReadsModelCard

ViewT = TypeVar("ViewT", bound=Widget)

#: Everything but the first screen, by widget id: imported and mounted when first needed, or in idle time
#: after the first frame (so the tree is interactive sooner: plotext, Markdown and the views' widgets wait).
DEFERRED: dict[str, tuple[str, str]] = {
    "tensor": ("tui.views.tensor", "TensorView"),
    "module": ("tui.views.module", "ModuleView"),
    "cross-layer": ("tui.views.cross_layer", "CrossLayerView"),
    "attention": ("tui.views.attention", "AttentionView"),
    "tokens": ("tui.views.tokens", "TokensView"),
    "lens": ("tui.views.lens", "LensView"),
    "experts": ("tui.views.experts", "ExpertsView"),
    "activations": ("tui.views.activations", "ActivationsView"),
    "patching": ("tui.views.patching", "PatchingView"),
    "attribution": ("tui.views.attribution", "AttributionView"),
    "lessons": ("tui.views.lessons", "LessonsPane"),
    "chat-template": ("tui.views.chat_template", "ChatTemplateView"),
    "diff": ("tui.views.diff", "DiffView"),
}
#: The longest the background building waits for the view on screen (its mount and first answer), seconds.
FOREGROUND_WAIT_S = 2.0
#: The views that read the model card (`set_model(summary, nodes)`), given it when read and before mounting.
MODEL_VIEWS = ("lessons", "attention", "experts")
#: The views that ask the worker: constructed with the app's data source.
REMOTE_VIEWS = ("tensor", "cross-layer", "attention", "tokens", "lens", "lessons", "chat-template", "experts",
                "activations", "patching", "attribution", "diff")


def build_view(view_id: str, data_source: Any) -> Widget:
    """A new, unmounted widget for `view_id` (its module imported on first use)."""
    module, name = DEFERRED[view_id]
    cls = getattr(importlib.import_module(module), name)
    return cls(data_source=data_source, id=view_id) if view_id in REMOTE_VIEWS else cls(id=view_id)


class DeferredViewsMixin(ExplorerBase):
    """Part of `ExplorerApp`: `view(id)` and the idle-time building of every view."""

    MODEL_VIEWS = MODEL_VIEWS

    def _init_deferred(self) -> None:
        self._mounting: set[str] = set()
        self._imported: set[str] = set()  # DEFERRED modules imported by the background import thread
        self._import_thread: threading.Thread | None = None
        self._background_go = threading.Event()  # cleared while the view on screen is being built or waits
        self._background_go.set()

    def view(self, view_id: str, mount: bool = True) -> Widget | None:
        """The mounted view (or lessons pane) `view_id`; None while it is not mounted yet, and then, with
        `mount`, start mounting it (its module is imported on first use)."""
        for widget in self.query(f"#{view_id}"):
            return widget if widget.is_mounted else None
        if mount and view_id in DEFERRED and view_id not in self._mounting:
            parent = self.query("#body" if view_id == "lessons" else "#views")
            if not parent:  # another screen is up (help, export) or the app is closing: later
                return None
            widget = build_view(view_id, self.client)
            if view_id != "lessons":
                widget.display = False  # the content switcher shows one view; the lessons pane follows a class
            if view_id in MODEL_VIEWS and self.summary and isinstance(widget, ReadsModelCard):
                widget.set_model(self.summary, self.nodes)
            self._mounting.add(view_id)
            parent.first().mount(widget)
        return None

    def mounted(self, view_id: str, kind: type[ViewT]) -> ViewT:
        """The view `view_id` once `_once_mounted` said it is mounted, checked to be the `kind` it is built as
        (`DEFERRED`), so that callers use its own methods with their types."""
        widget = self.view(view_id, mount=False)
        if not isinstance(widget, kind):
            raise RuntimeError(f"view {view_id!r} is {type(widget).__name__}, not a mounted {kind.__name__}")
        return widget

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
        if not self.is_running:
            return
        if self._foreground_busy():  # the user's view first: its import, mount and answer get the whole loop
            self._background_go.clear()
            self.set_timer(0.05, self._mount_next_deferred)
            return
        self._background_go.set()
        if self._import_thread is None:
            self._import_thread = threading.Thread(target=self._import_deferred, name="import-views", daemon=True)
            self._import_thread.start()
        missing = [view_id for view_id in DEFERRED if view_id not in self._mounting]
        if missing:
            if DEFERRED[missing[0]][0] in self._imported:
                self.view(missing[0])
        elif self.all_views_mounted:
            if self.tune_gc:
                tune_gc()
            return
        self.set_timer(0.05, self._mount_next_deferred)

    def _foreground_busy(self) -> bool:
        """Whether the view the user asked for is still being mounted, or waits for an answer it asked for (for
        at most FOREGROUND_WAIT_S, so that a request that never settles cannot stop the background for good)."""
        wanted = getattr(self, "_wanted_view", None)
        if wanted not in DEFERRED:
            return False
        widget = self.view(wanted, mount=False)
        if widget is None:
            return wanted in self._mounting
        waiting_for = getattr(widget, "waiting_for", None)
        return waiting_for is not None and 0.0 < waiting_for() < FOREGROUND_WAIT_S

    def _import_deferred(self) -> None:
        for module, _ in DEFERRED.values():
            self._background_go.wait(FOREGROUND_WAIT_S)  # the GIL goes to the view on screen while it is built
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the main thread's own import will raise it where it is shown
                pass
            self._imported.add(module)


def tune_gc() -> None:
    """Everything built so far lives as long as the app: keep it out of the garbage collector's passes, and
    make full passes rarer. Textual keeps ~100k cached render objects alive, and a full pass over them
    stalled a keypress by 0.1-0.4 s now and then; the keypress benchmark measures this."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 10, 100)
